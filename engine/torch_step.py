"""The batched step in torch, on any device: K streams of a StepRuntime (or of every member of an
EnsembleRuntime) stepped together with the same weights, computing what StepRuntime.step_batch computes.

On the CPU numpy's StepRuntime.step_batch is the faster at the planner's sizes (planning_stepper keeps
it there); on a GPU this is what lets K reach the hundreds. States fork from the live (numpy) stream state,
so the session's own stream never leaves the CPU; logits come back as a numpy array for the sampler.
"""
from __future__ import annotations

import numpy as np
import torch

from .ensemble import EnsembleBatchState, EnsembleRuntime, EnsembleState
from .model import INTERVAL_REACH, INTERVAL_SPAN
from .runtime import StepRuntime, StepState
from .tokens import BOS, MAX_SHIFT, N_PITCHES, NOTE_OFF, NOTE_ON, TIME_SHIFT


def pick_device(name: str = "auto") -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name == "cuda" and not torch.cuda.is_available():
        raise ValueError("--device cuda: no CUDA device is available here (use auto or cpu)")
    return torch.device(name)


class TorchBatch:
    """K streams forked from one StepState, on the stepper's device (see BatchState)."""

    def __init__(self, stepper: "TorchStepper", parent: StepState, k: int, max_tokens: int = 256):
        dev = stepper.device
        self.h = torch.from_numpy(parent.h).to(dev)[:, None].repeat(1, k, 1).contiguous()
        self.c = torch.from_numpy(parent.c).to(dev)[:, None].repeat(1, k, 1).contiguous()
        self.sound = torch.from_numpy(parent.sound).to(dev)[None].repeat(k, 1)
        self.pitches = torch.from_numpy(parent.pitches).to(dev)[None].repeat(k, 1, 1)
        self.stepped = parent.stepped
        self.length = parent.length
        self.written = 0
        self.memory = parent.trace is not None and stepper.memory is not None
        if self.memory:
            trace = parent.trace
            cfg = trace.cfg
            # the shared past the memory can still read during a plan: gathered once
            first = max(0, parent.length - cfg.window, trace.high - trace.capacity)
            idx = np.arange(first, parent.length) % trace.capacity
            self.past_first = first
            self.past_keys_t = torch.from_numpy(np.ascontiguousarray(trace.keys[idx].T)).to(dev)
            self.past_values = torch.from_numpy(trace.values[idx]).to(dev)
            self.high, self.capacity, self.cfg = trace.high, trace.capacity, cfg
            hidden = parent.h.shape[1]
            self.new_keys = torch.zeros((k, max_tokens, hidden), device=dev)
            self.new_values = torch.zeros((k, max_tokens), dtype=torch.long, device=dev)

    @property
    def k(self) -> int:
        return self.h.shape[1]

    def keep(self, rows: np.ndarray) -> None:
        idx = torch.as_tensor(rows, device=self.h.device, dtype=torch.long)
        self.h, self.c = self.h[:, idx].contiguous(), self.c[:, idx].contiguous()
        self.sound, self.pitches = self.sound[idx], self.pitches[idx]
        if self.memory:
            self.new_keys, self.new_values = self.new_keys[idx], self.new_values[idx]


class TorchStepper:
    """StepRuntime.step_batch in torch (fork, step_batch, keep)."""

    def __init__(self, runtime: StepRuntime, device: str | torch.device = "cpu"):
        self.device = torch.device(device)
        self.runtime = runtime
        self.config = runtime.config
        self.memory = runtime.memory
        self.rows = getattr(runtime, "rows", 0)

        def t(a):
            return None if a is None else torch.from_numpy(np.ascontiguousarray(a)).to(self.device)

        self.tok_table, self.pos_table, self.sound_table = t(runtime.tok_table), t(runtime.pos_table), \
            t(runtime.sound_table)
        # (m, n) weights read as their (n, m) transposes: the products' fast way round, on the CPU too
        self.w_hh0_t = t(runtime.w_hh0).T
        self.w_t = [t(w).T for w in runtime.w]
        self.b = [t(b) for b in runtime.b]
        self.w_head_t, self.b_head = t(runtime.w_head).T, t(runtime.b_head)
        self.w_int_t = t(runtime.w_int.T) if runtime.w_int is not None else None
        self.b_int = t(runtime.b_int) if runtime.w_int is not None else None

    @property
    def weight_bytes(self) -> int:
        return self.runtime.weight_bytes

    def fork(self, state: StepState, k: int, max_tokens: int = 256) -> TorchBatch:
        return TorchBatch(self, state, k, max_tokens)

    @torch.inference_mode()
    def step_batch(self, tokens: np.ndarray, positions: np.ndarray, state: TorchBatch) -> np.ndarray:
        return self.logits(tokens, positions, state).cpu().numpy()

    def logits(self, tokens: np.ndarray, positions: np.ndarray, state: TorchBatch) -> torch.Tensor:
        H = self.config.hidden
        dev = self.device
        tok = torch.as_tensor(np.asarray(tokens, dtype=np.int64), device=dev)
        pos = torch.as_tensor(np.asarray(positions, dtype=np.int64), device=dev)
        if state.memory and state.stepped:
            self._write(state, tok)
        state.stepped = True
        on = (tok >= NOTE_ON) & (tok < NOTE_OFF)
        off = (tok >= NOTE_OFF) & (tok < TIME_SHIFT)
        if self.w_int_t is not None:
            self._follow_pitches(tok, on, off, state.pitches)
        for layer in range(self.config.layers):
            if layer == 0:
                g = torch.addmm(self.tok_table[tok], state.h[0], self.w_hh0_t)
                g += self.pos_table[pos]
                if self.sound_table is not None:
                    state.sound += torch.where(on[:, None], self.sound_table[(tok - NOTE_ON).clamp(0, 127)], 0.0)
                    state.sound -= torch.where(off[:, None], self.sound_table[(tok - NOTE_OFF).clamp(0, 127)], 0.0)
                    g += state.sound
            else:
                g = torch.addmm(self.b[layer - 1], torch.cat([state.h[layer - 1], state.h[layer]], dim=1),
                                self.w_t[layer - 1])
            i, f, cand, o = g.split(H, dim=1)
            c = state.c[layer]
            c.mul_(torch.sigmoid(f)).add_(torch.sigmoid(i) * torch.tanh(cand))
            state.h[layer] = torch.sigmoid(o) * torch.tanh(c)
        logits = torch.addmm(self.b_head, state.h[-1], self.w_head_t)
        if self.w_int_t is not None:
            logits = self._interval_scores(state, logits)
        if state.memory:
            logits = self._mix_memory(state, logits)
        return logits

    def _write(self, state: TorchBatch, tok: torch.Tensor) -> None:
        i = state.written
        if i == state.new_keys.shape[1]:
            state.new_keys = torch.cat([state.new_keys, torch.zeros_like(state.new_keys)], dim=1)
            state.new_values = torch.cat([state.new_values, torch.zeros_like(state.new_values)], dim=1)
        out = state.h[-1]
        state.new_keys[:, i] = out / out.norm(dim=1, keepdim=True).clamp_min(1e-12)
        state.new_values[:, i] = tok
        state.written += 1

    def _follow_pitches(self, tok, on, off, pitches) -> None:
        rows = torch.arange(len(tok), device=tok.device)
        new_tick = ((tok >= TIME_SHIFT) & (tok < TIME_SHIFT + MAX_SHIFT)) | (tok == BOS)
        r = rows[on]
        pitches[r, 0, INTERVAL_REACH + tok[on] - NOTE_ON] = 1.0
        r = rows[off]
        pitches[r, 0, INTERVAL_REACH + tok[off] - NOTE_OFF] = 0.0
        pitches[r, 1, INTERVAL_REACH + tok[off] - NOTE_OFF] = 1.0
        pitches[new_tick, 1] = 0.0
        if self.rows == 4:
            pitches[:, 2] = 0.0
            sounding = pitches[:, 0] > 0
            low = sounding.to(torch.uint8).argmax(dim=1)
            any_sounding = sounding[rows, low]
            pitches[rows[any_sounding], 2, low[any_sounding]] = 1.0
            pitches[:, 3] = 0.0
            pitches[rows[on], 3, INTERVAL_REACH + tok[on] - NOTE_ON] = 1.0

    def _interval_scores(self, state: TorchBatch, logits: torch.Tensor) -> torch.Tensor:
        K = state.k
        profiles = torch.addmm(self.b_int, state.h[-1], self.w_int_t).view(K, self.rows, 2, INTERVAL_SPAN)
        windows = state.pitches.unfold(2, INTERVAL_SPAN, 1)  # (K, rows, 128, SPAN)
        notes = torch.einsum("kros,krps->kop", profiles, windows[:, :self.rows])
        logits = logits.clone()
        logits[:, NOTE_ON:NOTE_ON + 2 * N_PITCHES] += notes.reshape(K, -1)
        return logits

    def _mix_memory(self, state: TorchBatch, logits: torch.Tensor) -> torch.Tensor:
        cfg = state.cfg
        K, V = state.k, self.config.vocab_size
        length = state.length + state.written
        lo = max(0, length - cfg.window, state.high - state.capacity)
        if length - lo <= 0:
            return logits
        h = state.h[-1]
        q = h * (cfg.theta / h.norm(dim=1, keepdim=True).clamp_min(1e-12))
        parts, values = [], []
        if lo < state.length:
            sims = q @ state.past_keys_t
            if lo > state.past_first:
                sims[:, :lo - state.past_first] = float("-inf")
            parts.append(sims)
            values.append(state.past_values.expand(K, -1))
        own_lo = max(lo, state.length) - state.length
        if own_lo < state.written:
            parts.append(torch.einsum("kth,kh->kt", state.new_keys[:, own_lo:state.written], q))
            values.append(state.new_values[:, own_lo:state.written])
        sims = torch.cat(parts, dim=1) if len(parts) > 1 else parts[0]
        vals = torch.cat(values, dim=1) if len(values) > 1 else values[0]
        top = sims.max(dim=1).values
        share = cfg.mix * (top / cfg.theta).clamp_min(0.0) ** cfg.gate
        live = share > 0.0
        if not bool(live.any()):
            return logits
        w = torch.exp(sims - top[:, None])
        p_mem = torch.zeros((K, V), device=logits.device, dtype=torch.float64).scatter_add_(1, vals, w.double())
        share = share.double()
        log_mem = torch.log(p_mem) + torch.log(torch.where(live, share, 1.0) / p_mem.sum(dim=1))[:, None]
        log_model = torch.log_softmax(logits.double(), dim=1) + torch.log1p(-torch.where(live, share, 0.0))[:, None]
        mixed = torch.logaddexp(log_model, log_mem).float()
        return torch.where(live[:, None], mixed, logits)


class TorchEnsembleStepper:
    """EnsembleRuntime.step_batch in torch: every member's stepper, mixed with the ensemble's weights."""

    def __init__(self, runtime: EnsembleRuntime, device: str | torch.device = "cpu"):
        self.device = torch.device(device)
        self.runtime = runtime
        self.config = runtime.config
        shared: dict[int, TorchStepper] = {}  # views of one model share its weights on the device
        for rt in runtime.runtimes:
            if id(rt) not in shared:
                shared[id(rt)] = TorchStepper(rt, device)
        self.steppers = [shared[id(rt)] for rt in runtime.runtimes]
        self.views = [None if v is None else (torch.as_tensor(v.inputs, device=self.device),
                                              torch.as_tensor(v.source, device=self.device),
                                              torch.as_tensor(v.unreachable, device=self.device, dtype=torch.long))
                      for v in runtime.views]
        self.log_weights = torch.as_tensor(runtime.log_weights, device=self.device)
        self.inverse_temperature = float(runtime.inverse_temperature)

    @property
    def weight_bytes(self) -> int:
        return self.runtime.weight_bytes

    def fork(self, state: EnsembleState, k: int, max_tokens: int = 256) -> EnsembleBatchState:
        return EnsembleBatchState([s.fork(m, k, max_tokens) for s, m in zip(self.steppers, state.members)])

    @torch.inference_mode()
    def step_batch(self, tokens: np.ndarray, positions: np.ndarray, state: EnsembleBatchState) -> np.ndarray:
        tok = torch.as_tensor(np.asarray(tokens, dtype=np.int64), device=self.device)
        parts = []
        for k, (stepper, view, s) in enumerate(zip(self.steppers, self.views, state.members)):
            if view is None:
                part = stepper.logits(tok.cpu().numpy(), positions, s)
            else:
                inputs, source, unreachable = view
                part = stepper.logits(inputs[tok].cpu().numpy(), positions, s)[:, source]
                part[:, unreachable] = float("-inf")
            parts.append(torch.log_softmax(part, dim=1) + self.log_weights[k])
        logits = torch.logsumexp(torch.stack(parts), dim=0)
        if self.inverse_temperature != 1.0:
            logits = logits * self.inverse_temperature
        return logits.cpu().numpy()


def batch_stepper(runtime, device: str | torch.device = "cpu"):
    """The torch batched stepper for a StepRuntime or an EnsembleRuntime."""
    if isinstance(runtime, EnsembleRuntime):
        return TorchEnsembleStepper(runtime, device)
    return TorchStepper(runtime, device)


def planning_stepper(runtime, device=None):
    """What steps a planner's K streams: the runtime itself (numpy) on the CPU, where it is the faster, and
    torch on a GPU."""
    if device is None or torch.device(device).type == "cpu":
        return runtime
    return batch_stepper(runtime, device)
