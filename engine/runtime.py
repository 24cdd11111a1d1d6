"""The per-event LSTM step for the realtime path, at the memory-bandwidth floor.

The trained weights are refolded once: layer 0's input projection becomes two lookup tables (token and
bar position, biases folded in), every later layer one fused [W_ih | W_hh] matrix applied to the
concatenated [input; hidden] vector, so one event costs one matrix-vector product per layer plus the
head. Buffers are preallocated and every operation writes in place: a step allocates nothing (with a session memory,
engine/memory.py, one vocabulary-sized array).
"""
from __future__ import annotations

import numpy as np
import torch

from .critic import DEFAULT_CHOICE
from .memory import MemoryConfig, MemoryTrace
from .model import INTERVAL_REACH, INTERVAL_SPAN, SHIFT_REACH, EventLSTM, ModelConfig
from .tokens import BOS, MAX_SHIFT, N_PITCHES, NOTE_OFF, NOTE_ON, TIME_SHIFT


class StepState:
    """Hidden and cell vectors of every layer, contiguous float32, updated in place by `step`; for
    models that read what sounds, that input already projected into layer 0's gates; for models with
    the interval head, which pitches sound (row 0), which were released at this tick (row 1), the
    lowest sounding pitch (row 2) and the note-on just read (row 3), each padded by INTERVAL_REACH zeros
    on both sides; for styles with a session memory, its trace and how many steps this state has
    written to it."""

    __slots__ = ("h", "c", "sound", "pitches", "trace", "length", "stepped")

    def __init__(self, layers: int, hidden: int, memory: MemoryConfig | None = None):
        self.h = np.zeros((layers, hidden), dtype=np.float32)
        self.c = np.zeros((layers, hidden), dtype=np.float32)
        self.sound = np.zeros(4 * hidden, dtype=np.float32)
        self.pitches = np.zeros((4, N_PITCHES + 2 * INTERVAL_REACH), dtype=np.float32)
        self.trace = MemoryTrace(memory, hidden) if memory is not None else None
        self.length = 0
        self.stepped = False

    def checkpoint(self) -> "StepState":
        """A copy to restore with `copy_from`; it shares the memory trace (see MemoryTrace)."""
        s = StepState.__new__(StepState)
        s.h, s.c, s.sound, s.pitches = self.h.copy(), self.c.copy(), self.sound.copy(), self.pitches.copy()
        s.trace, s.length, s.stepped = self.trace, self.length, self.stepped
        return s

    def copy(self) -> "StepState":
        """An independent copy (its own memory trace)."""
        s = self.checkpoint()
        if s.trace is not None:
            s.trace = s.trace.copy()
        return s

    def copy_from(self, other: "StepState") -> None:
        np.copyto(self.h, other.h)
        np.copyto(self.c, other.c)
        np.copyto(self.sound, other.sound)
        np.copyto(self.pitches, other.pitches)
        if self.trace is not None and other.trace is not None and other.trace is not self.trace:
            np.copyto(self.trace.keys, other.trace.keys)
            np.copyto(self.trace.values, other.trace.values)
            self.trace.high = other.trace.high
        self.length, self.stepped = other.length, other.stepped


class BatchState:
    """K streams forked from one StepState, stepped together by `StepRuntime.step_batch`: hidden and cell
    vectors (layers, K, hidden), the sounding input (K, 4 hidden) and the pitch rows (K, 4, padded
    pitches); with a session memory, the parent's trace (read only: its keys serve every stream) and each
    stream's own keys and values since the fork."""

    __slots__ = ("h", "c", "sound", "pitches", "trace", "length", "stepped", "new_keys", "new_values", "written",
                 "past")

    def __init__(self, parent: StepState, k: int, max_tokens: int = 1024):
        self.h = np.ascontiguousarray(np.repeat(parent.h[:, None], k, axis=1))
        self.c = np.ascontiguousarray(np.repeat(parent.c[:, None], k, axis=1))
        self.sound = np.repeat(parent.sound[None], k, axis=0)
        self.pitches = np.repeat(parent.pitches[None], k, axis=0)
        self.trace = parent.trace
        self.length = parent.length  # the parent's: entries at or after it are this batch's own
        self.stepped = parent.stepped
        hidden = parent.h.shape[1]
        self.new_keys = np.zeros((k, max_tokens, hidden), dtype=np.float32) if parent.trace is not None else None
        self.new_values = np.zeros((k, max_tokens), dtype=np.int64) if parent.trace is not None else None
        self.written = 0
        self.past = None  # the shared past the memory reads, gathered once (see StepRuntime._memory_past)

    @property
    def k(self) -> int:
        return self.h.shape[1]

    def keep(self, rows: np.ndarray) -> None:
        """Only these streams go on (the planner drops the finished and the pruned): the next steps cost less."""
        self.h = np.ascontiguousarray(self.h[:, rows])
        self.c = np.ascontiguousarray(self.c[:, rows])
        self.sound, self.pitches = self.sound[rows], self.pitches[rows]
        if self.new_keys is not None:  # only what was written is read: the rest of the room is not copied
            w = self.written
            keys = np.empty((len(rows),) + self.new_keys.shape[1:], dtype=np.float32)
            values = np.empty((len(rows), self.new_values.shape[1]), dtype=np.int64)
            keys[:, :w], values[:, :w] = self.new_keys[rows, :w], self.new_values[rows, :w]
            self.new_keys, self.new_values = keys, values

    def stream(self, k: int) -> StepState:
        """Stream k as a StepState of its own (with its own copy of the memory: parent's past + its keys)."""
        s = StepState(self.h.shape[0], self.h.shape[2])
        s.h[:], s.c[:] = self.h[:, k], self.c[:, k]
        s.sound[:], s.pitches[:] = self.sound[k], self.pitches[k]
        s.length, s.stepped = self.length + self.written, self.stepped
        if self.trace is not None:
            s.trace = self.trace.copy()
            for i in range(self.written):
                slot = (self.length + i) % s.trace.capacity
                s.trace.keys[slot] = self.new_keys[k, i]
                s.trace.values[slot] = self.new_values[k, i]
            s.trace.high = s.length
        return s


class StepRuntime:
    critic_weights: dict | None = None  # the style's critic weights (engine/critic.py), set by Style.runtime
    critic_discriminator = None  # its realism discriminator (engine/discriminator.py), or None
    critic_choice = DEFAULT_CHOICE  # how its critic picks: "sample" or "best"

    def __init__(self, model: EventLSTM, memory: MemoryConfig | None = None):
        model = model.eval()
        cfg: ModelConfig = model.config
        self.model = model  # for `replay`: a whole stream in one forward pass
        self.config = cfg
        self.memory = memory
        H = cfg.hidden
        sd = {k: v.detach().to("cpu", torch.float32).numpy() for k, v in model.state_dict().items()}
        w_ih0, w_hh0 = sd["lstm.weight_ih_l0"], sd["lstm.weight_hh_l0"]
        b0 = sd["lstm.bias_ih_l0"] + sd["lstm.bias_hh_l0"]
        tok_emb = sd["tok_emb.weight"]
        if cfg.shift_input:  # what is played reads shift 0: a constant, folded into every token's row
            tok_emb = tok_emb + sd["shift_emb.weight"][SHIFT_REACH]
        self.tok_table = np.ascontiguousarray(tok_emb @ w_ih0.T + b0, dtype=np.float32)
        self.pos_table = np.ascontiguousarray(sd["pos_emb.weight"] @ w_ih0.T, dtype=np.float32)
        # who plays the token (tokens.ROLE_*): one more row to add; ROLE_NONE's is zero
        self.role_table = (np.ascontiguousarray(sd["role_emb.weight"] @ w_ih0.T, dtype=np.float32)
                           if cfg.role_input else None)
        # what the player sounds (model.player_sounding): the sum of one row per pitch, see player_gates
        self.player_table = (np.ascontiguousarray((w_ih0 @ sd["player_proj.weight"]).T, dtype=np.float32)
                             if cfg.player_input else None)
        # what sounds enters layer 0 through one column per pitch: kept as a running sum, a note-on
        # adds its pitch's row, a note-off subtracts it
        self.sound_table = (np.ascontiguousarray((w_ih0 @ sd["sound_proj.weight"]).T, dtype=np.float32)
                            if cfg.sounding_input else None)
        self.w_hh0 = np.ascontiguousarray(w_hh0, dtype=np.float32)
        self.w = []
        self.b = []
        for layer in range(1, cfg.layers):
            w = np.concatenate([sd[f"lstm.weight_ih_l{layer}"], sd[f"lstm.weight_hh_l{layer}"]], axis=1)
            self.w.append(np.ascontiguousarray(w, dtype=np.float32))
            self.b.append(sd[f"lstm.bias_ih_l{layer}"] + sd[f"lstm.bias_hh_l{layer}"])
        self.w_head = np.ascontiguousarray(sd["head.weight"], dtype=np.float32)
        self.b_head = sd["head.bias"].astype(np.float32)
        if cfg.interval_head:
            # profiles reversed along the interval axis, so that profile[j] pairs with the window of
            # pitches p + j - REACH (as in EventLSTM.interval_scores); grouped by what they read
            # (sounding | released), then on | off
            K = self.rows = 4 if cfg.interval_roles else 2
            w = sd["interval_proj.weight"].reshape(2, K, INTERVAL_SPAN, H)[:, :, ::-1].transpose(1, 0, 2, 3)
            b = sd["interval_proj.bias"].reshape(2, K, INTERVAL_SPAN)[:, :, ::-1].transpose(1, 0, 2)
            self.w_int = np.ascontiguousarray(w.reshape(-1, H), dtype=np.float32)
            self.b_int = np.ascontiguousarray(b.reshape(-1), dtype=np.float32)
            self.profiles = np.empty(2 * K * INTERVAL_SPAN, dtype=np.float32)
            self.window = np.empty((INTERVAL_SPAN, N_PITCHES), dtype=np.float32)
            self.notes = np.empty((2, N_PITCHES), dtype=np.float32)
            self.part = np.empty((2, N_PITCHES), dtype=np.float32)
        else:
            self.w_int = None
        self.gates = np.empty(4 * H, dtype=np.float32)
        self.tmp = np.empty(4 * H, dtype=np.float32)
        self.xh = np.empty(2 * H, dtype=np.float32)
        self.logits = np.empty(cfg.vocab_size, dtype=np.float32)
        if memory is not None:
            self.sims = np.empty(memory.window, dtype=np.float32)
            self.log_mem = np.empty(cfg.vocab_size, dtype=np.float32)
            self.probs = np.empty(cfg.vocab_size, dtype=np.float32)
        scratch = self.initial_state()
        for _ in range(3):  # first calls page the weights in: keep that off the first played note
            self.step(0, 0, scratch)

    @property
    def weight_bytes(self) -> int:
        """Bytes one step must read: the matrices plus the two table rows it looks up."""
        mats = [self.w_hh0, self.w_head, *self.w] + ([self.w_int] if self.w_int is not None else [])
        return sum(m.nbytes for m in mats) + self.tok_table.shape[1] * 4 * 2

    def sync_sounding(self, state: StepState, sounding: np.ndarray) -> None:
        """Sets the sounding input of `state` to the pitches marked in `sounding` (128 bools)."""
        sounding = np.asarray(sounding, dtype=bool)
        if self.sound_table is not None:
            np.sum(self.sound_table[sounding], axis=0, out=state.sound)
        state.pitches[0, INTERVAL_REACH:INTERVAL_REACH + N_PITCHES] = sounding
        self._mark_lowest(state.pitches)

    def initial_state(self) -> StepState:
        return StepState(self.config.layers, self.config.hidden, self.memory)

    def replay(self, tokens: list[int], positions: list[int],
               roles: list[int] | None = None) -> tuple[StepState, np.ndarray]:
        """A fresh state that has heard `tokens` (from BOS) at `positions` (played by `roles`, default
        nobody named), and the next-token logits: what stepping them one by one gives, in one forward pass
        of the model (a style switch hears the recent stream this way, in milliseconds instead of one step
        per token)."""
        from .model import pitch_context

        model = self.model
        device = model.head.weight.device
        x = torch.as_tensor(np.asarray(tokens, dtype=np.int64), device=device)[None]
        pos = torch.as_tensor(np.asarray(positions, dtype=np.int64), device=device)[None]
        who = None if roles is None else torch.as_tensor(np.asarray(roles, dtype=np.int64), device=device)[None]
        sounding = released = None
        if model.reads_pitches:
            snd, rel = pitch_context(np.asarray(tokens))
            sounding, released = torch.from_numpy(snd).to(device)[None], torch.from_numpy(rel).to(device)[None]
        with torch.no_grad():
            y, (h, c) = model.outputs(x, pos, None, sounding, roles=who)
            last = model.scores(y[:, -1:], x[:, -1:], None if sounding is None else sounding[:, -1:],
                                None if released is None else released[:, -1:])
        state = self.initial_state()
        state.h[:] = h[:, 0].float().cpu().numpy()
        state.c[:] = c[:, 0].float().cpu().numpy()
        state.stepped = True
        if model.reads_pitches:
            now, just_released = snd[-1], rel[-1]
            self.sync_sounding(state, now)
            state.pitches[1, INTERVAL_REACH:INTERVAL_REACH + N_PITCHES] = just_released
            if NOTE_ON <= tokens[-1] < NOTE_OFF:
                state.pitches[3, INTERVAL_REACH + tokens[-1] - NOTE_ON] = 1.0
        if state.trace is not None:  # what each step left behind: its output, and the token that followed
            outputs = y[0, :-1].float().cpu().numpy()
            n = min(len(outputs), state.trace.capacity)
            slots = np.arange(len(outputs) - n, len(outputs)) % state.trace.capacity
            keys = outputs[len(outputs) - n:]
            state.trace.keys[slots] = keys / np.maximum(np.linalg.norm(keys, axis=1, keepdims=True), 1e-12)
            state.trace.values[slots] = np.asarray(tokens[len(tokens) - n:], dtype=np.int64)
            state.trace.high = state.length = len(outputs)
        np.copyto(self.logits, last[0, 0].float().cpu().numpy())
        if state.trace is not None:
            self._mix_memory(state)
        return state, self.logits

    def player_gates(self, pitches) -> np.ndarray | None:
        """What `step` adds for the player sounding `pitches` (model.player_sounding), or None: nothing (no
        pitches, or a model without the player input)."""
        pitches = list(pitches)
        if self.player_table is None or not pitches:
            return None
        return self.player_table[pitches].sum(axis=0)

    def step(self, token: int, position: int, state: StepState, role: int = 0,
             player: np.ndarray | None = None) -> np.ndarray:
        """Advances `state` in place past (token, position), played by `role` (tokens.ROLE_*, read by models
        with the role input), with the player sounding what `player` (player_gates) stands for; returns the
        next-token logits (a buffer that the next call overwrites)."""
        H = self.config.hidden
        g = self.gates
        if state.trace is not None and state.stepped:
            state.trace.write(state.length, state.h[-1], token)
            state.length += 1
        state.stepped = True
        if self.w_int is not None:
            self._follow_pitches(token, state.pitches)
            if self.rows == 4:
                self._mark_lowest(state.pitches)
                state.pitches[3].fill(0.0)
                if NOTE_ON <= token < NOTE_OFF:
                    state.pitches[3, INTERVAL_REACH + token - NOTE_ON] = 1.0
        for layer in range(self.config.layers):
            if layer == 0:
                np.dot(self.w_hh0, state.h[0], out=g)
                g += self.tok_table[token]
                g += self.pos_table[position]
                if role and self.role_table is not None:
                    g += self.role_table[role]
                if player is not None:
                    g += player
                if self.sound_table is not None:
                    if NOTE_ON <= token < NOTE_OFF:
                        state.sound += self.sound_table[token - NOTE_ON]
                    elif NOTE_OFF <= token < TIME_SHIFT:
                        state.sound -= self.sound_table[token - NOTE_OFF]
                    g += state.sound
            else:
                self.xh[:H] = state.h[layer - 1]
                self.xh[H:] = state.h[layer]
                np.dot(self.w[layer - 1], self.xh, out=g)
                g += self.b[layer - 1]
            cand = self.tmp[:H]
            np.tanh(g[2 * H:3 * H], out=cand)
            # sigmoid(x) = 0.5 * tanh(x / 2) + 0.5: no exp(-x), whose denormal results for large x
            # make a step 30x slower on x86
            g *= 0.5
            np.tanh(g, out=g)
            g *= 0.5
            g += 0.5
            c = state.c[layer]
            c *= g[H:2 * H]
            cand *= g[:H]
            c += cand
            h = state.h[layer]
            np.tanh(c, out=h)
            h *= g[3 * H:]
        np.dot(self.w_head, state.h[-1], out=self.logits)
        self.logits += self.b_head
        if self.w_int is not None:
            self._add_interval_scores(state)
        if state.trace is not None:
            self._mix_memory(state)
        return self.logits

    # ------------------------------------------------------------------ K streams at once
    def fork(self, state: StepState, k: int, max_tokens: int = 1024) -> BatchState:
        """K copies of `state` to step together (the planner's candidates)."""
        return BatchState(state, k, max_tokens)

    def step_batch(self, tokens: np.ndarray, positions: np.ndarray, state: BatchState) -> np.ndarray:
        """`step` for K streams, one token each: one matrix-matrix product per layer instead of K
        matrix-vector products. Returns (K, vocab) logits (a new array)."""
        H = self.config.hidden
        tokens = np.asarray(tokens, dtype=np.int64)
        positions = np.asarray(positions, dtype=np.int64)
        if state.trace is not None and state.stepped:
            self._write_batch(state, tokens)
        state.stepped = True
        if self.w_int is not None:
            self._follow_pitches_batch(tokens, state.pitches)
        on = (tokens >= NOTE_ON) & (tokens < NOTE_OFF)
        off = (tokens >= NOTE_OFF) & (tokens < TIME_SHIFT)
        for layer in range(self.config.layers):
            if layer == 0:
                g = (self.w_hh0 @ state.h[0].T).T  # (m, n) @ (n, K): OpenBLAS's fast way round, for any K
                g += self.tok_table[tokens]
                g += self.pos_table[positions]
                if self.sound_table is not None:
                    if on.any():
                        state.sound[on] += self.sound_table[tokens[on] - NOTE_ON]
                    if off.any():
                        state.sound[off] -= self.sound_table[tokens[off] - NOTE_OFF]
                    g += state.sound
            else:
                g = (self.w[layer - 1] @ np.concatenate([state.h[layer - 1], state.h[layer]], axis=1).T).T
                g += self.b[layer - 1]
            cand = np.tanh(g[:, 2 * H:3 * H])
            g *= 0.5
            np.tanh(g, out=g)
            g *= 0.5
            g += 0.5
            c = state.c[layer]
            c *= g[:, H:2 * H]
            cand *= g[:, :H]
            c += cand
            np.tanh(c, out=state.h[layer])
            state.h[layer] *= g[:, 3 * H:]
        logits = np.ascontiguousarray((self.w_head @ state.h[-1].T).T)
        logits += self.b_head
        if self.w_int is not None:
            self._add_interval_scores_batch(state, logits)
        if state.trace is not None:
            self._mix_memory_batch(state, logits)
        return logits

    def _write_batch(self, state: BatchState, tokens: np.ndarray) -> None:
        i = state.written
        if i == state.new_keys.shape[1]:  # a longer plan than foreseen: grow
            state.new_keys = np.concatenate([state.new_keys, np.zeros_like(state.new_keys)], axis=1)
            state.new_values = np.concatenate([state.new_values, np.zeros_like(state.new_values)], axis=1)
        out = state.h[-1]
        norms = np.sqrt(np.einsum("kh,kh->k", out, out))
        state.new_keys[:, i] = out / np.maximum(norms, 1e-12)[:, None]
        state.new_values[:, i] = tokens
        state.written += 1

    def _follow_pitches_batch(self, tokens: np.ndarray, pitches: np.ndarray) -> None:
        rows = np.arange(len(tokens))
        on = (tokens >= NOTE_ON) & (tokens < NOTE_OFF)
        off = (tokens >= NOTE_OFF) & (tokens < TIME_SHIFT)
        new_tick = ((tokens >= TIME_SHIFT) & (tokens < TIME_SHIFT + MAX_SHIFT)) | (tokens == BOS)
        pitches[rows[on], 0, INTERVAL_REACH + tokens[on] - NOTE_ON] = 1.0
        pitches[rows[off], 0, INTERVAL_REACH + tokens[off] - NOTE_OFF] = 0.0
        pitches[rows[off], 1, INTERVAL_REACH + tokens[off] - NOTE_OFF] = 1.0
        pitches[new_tick, 1] = 0.0
        if self.rows == 4:
            pitches[:, 2] = 0.0
            sounding = pitches[:, 0] > 0
            low = np.argmax(sounding, axis=1)
            any_sounding = sounding[rows, low]
            pitches[rows[any_sounding], 2, low[any_sounding]] = 1.0
            pitches[:, 3] = 0.0
            pitches[rows[on], 3, INTERVAL_REACH + tokens[on] - NOTE_ON] = 1.0

    def _add_interval_scores_batch(self, state: BatchState, logits: np.ndarray) -> None:
        K = state.k
        profiles = (state.h[-1] @ self.w_int.T + self.b_int).reshape(K, self.rows, 2, INTERVAL_SPAN)
        notes = np.zeros((K, 2, N_PITCHES), dtype=np.float32)
        for r in range(self.rows):
            row = state.pitches[:, r]
            if not row.any():
                continue
            windows = np.lib.stride_tricks.sliding_window_view(row, INTERVAL_SPAN, axis=1)  # (K, 128, SPAN)
            notes += np.einsum("kos,kps->kop", profiles[:, r], windows, optimize=True)
        logits[:, NOTE_ON:NOTE_ON + 2 * N_PITCHES] += notes.reshape(K, -1)

    @staticmethod
    def _memory_past(state: BatchState, lo: int):
        """The shared past a batch's memory reads, [first, fork point), gathered from the ring once per batch
        (the window only slides forward from there), sorted by value (stable: in time within a value): its
        keys, where each entry went (to mask those the window slides past), where each value's
        run starts, the values."""
        if state.past is None:
            trace = state.trace
            first = min(lo, state.length)
            idx = np.arange(first, state.length) % trace.capacity
            values = trace.values[idx]
            order = np.argsort(values, kind="stable")
            keys = trace.keys[idx[order]]  # (n, hidden): keys @ queries.T is the fastest way round for K queries
            where = np.empty_like(order)
            where[order] = np.arange(len(order))
            sorted_values = values[order]
            starts = np.flatnonzero(np.r_[True, sorted_values[1:] != sorted_values[:-1]]) if len(values) else \
                np.zeros(0, dtype=np.int64)
            state.past = (first, keys, where, starts, sorted_values[starts])
        return state.past

    def _mix_memory_batch(self, state: BatchState, logits: np.ndarray) -> None:
        """_mix_memory for every stream: the parent's keys read once (one product for all K queries), each
        stream's own keys since the fork on top."""
        trace, cfg = state.trace, state.trace.cfg
        K, V = state.k, self.config.vocab_size
        length = state.length + state.written
        lo = max(0, length - cfg.window, trace.high - trace.capacity)
        if length - lo <= 0:
            return
        h = state.h[-1]
        q = h * (np.float32(cfg.theta) / np.maximum(np.sqrt(np.einsum("kh,kh->k", h, h)), 1e-12))[:, None]
        past_first, keys, where, starts, groups = self._memory_past(state, lo)
        parts = []
        if lo < state.length:
            parts.append((keys @ q.T).T)
            if lo > past_first:  # the window slid past the oldest: those no longer count
                parts[0][:, where[:lo - past_first]] = -np.inf
        own_lo = max(lo, state.length) - state.length
        if own_lo < state.written:
            parts.append(np.matmul(state.new_keys[:, own_lo:state.written], q[:, :, None])[:, :, 0])
        sims = np.concatenate(parts, axis=1) if len(parts) > 1 else parts[0]
        top = sims.max(axis=1)
        share = cfg.mix * np.maximum(top / cfg.theta, 0.0) ** cfg.gate
        live = share > 0.0
        if not live.any():
            return
        w = np.exp(sims - top[:, None])
        p_mem = np.zeros((K, V))
        n_past = 0
        if lo < state.length:  # the past's weights summed per token: sorted by value already, one reduceat
            n_past = keys.shape[0]
            p_mem[:, groups] = np.add.reduceat(w[:, :n_past], starts, axis=1)
        if own_lo < state.written:
            own = state.new_values[:, own_lo:state.written]
            flat = (np.arange(K)[:, None] * V + own).ravel()
            p_mem += np.bincount(flat, weights=w[:, n_past:].ravel(), minlength=K * V).reshape(K, V)
        # (1 - m) softmax + m p_memory in float64 probabilities (a third of logaddexp's cost); where both
        # underflow, the model's own log-probability stays, finite, as in the single step's log space
        rows = np.flatnonzero(live)
        share = share[rows].astype(np.float64)
        z = logits[rows].astype(np.float64)
        z -= z.max(axis=1, keepdims=True)
        model = np.exp(z)
        total = model.sum(axis=1)
        model *= ((1.0 - share) / total)[:, None]
        p_mem = p_mem[rows]
        p_mem *= (share / p_mem.sum(axis=1))[:, None]
        model += p_mem
        zero = model <= 0.0
        np.log(model, out=model, where=~zero)
        if zero.any():
            model[zero] = (z + (np.log1p(-share) - np.log(total))[:, None])[zero]
        logits[rows] = model

    @staticmethod
    def _follow_pitches(token: int, pitches: np.ndarray) -> None:
        if NOTE_ON <= token < NOTE_OFF:
            pitches[0, INTERVAL_REACH + token - NOTE_ON] = 1.0
        elif NOTE_OFF <= token < TIME_SHIFT:
            pitches[0, INTERVAL_REACH + token - NOTE_OFF] = 0.0
            pitches[1, INTERVAL_REACH + token - NOTE_OFF] = 1.0
        elif TIME_SHIFT <= token < TIME_SHIFT + MAX_SHIFT or token == BOS:
            pitches[1].fill(0.0)

    @staticmethod
    def _mark_lowest(pitches: np.ndarray) -> None:
        pitches[2].fill(0.0)
        low = int(np.argmax(pitches[0]))
        if pitches[0, low]:
            pitches[2, low] = 1.0

    def _add_interval_scores(self, state: StepState) -> None:
        np.dot(self.w_int, state.h[-1], out=self.profiles)
        self.profiles += self.b_int
        profiles = self.profiles.reshape(self.rows, 2, INTERVAL_SPAN)  # (context row, on|off, interval)
        notes = self.notes
        notes.fill(0.0)
        for k in range(self.rows):
            row = state.pitches[k]
            if not row.any():
                continue
            # window[j, p] = row[p + j]: every pitch's neighbour at each interval
            np.copyto(self.window, np.lib.stride_tricks.as_strided(
                row, (INTERVAL_SPAN, N_PITCHES), (row.strides[0], row.strides[0])))
            np.dot(profiles[k], self.window, out=self.part)
            notes += self.part
        self.logits[NOTE_ON:NOTE_ON + 2 * N_PITCHES] += notes.reshape(-1)

    def _mix_memory(self, state: StepState) -> None:
        """logits <- log((1 - m) softmax(logits) + m p_memory), as engine.memory.memory_log_probs."""
        trace, cfg = state.trace, state.trace.cfg
        lo, hi = trace.span(state.length)
        n = hi - lo
        if n <= 0:
            return
        h = state.h[-1]
        q = h * np.float32(cfg.theta / max(float(np.sqrt(h @ h)), 1e-12))
        sims = self.sims[:n]
        a, b = lo % trace.capacity, hi % trace.capacity
        if a < b or b == 0:
            np.dot(trace.keys[a:a + n], q, out=sims)
            values = trace.values[a:a + n]
        else:
            first = trace.capacity - a
            np.dot(trace.keys[a:], q, out=sims[:first])
            np.dot(trace.keys[:b], q, out=sims[first:])
            values = np.concatenate((trace.values[a:], trace.values[:b]))
        top = float(sims.max())
        share = cfg.mix * max(top / cfg.theta, 0.0) ** cfg.gate
        if share <= 0.0:
            return
        sims -= top
        np.exp(sims, out=sims)
        p_mem = np.bincount(values, weights=sims, minlength=self.config.vocab_size)
        # in log space: a token the model all but rules out (exp underflows) keeps a finite score
        log_mem = self.log_mem
        log_mem.fill(-np.inf)
        np.log(p_mem, out=log_mem, where=p_mem > 0)
        log_mem += np.float32(np.log(share / p_mem.sum()))
        logits = self.logits
        logits -= logits.max()
        np.exp(logits, out=self.probs)
        logits -= np.float32(np.log(self.probs.sum()) - np.log1p(-share))
        np.logaddexp(logits, log_mem, out=logits)
