"""An ensemble of styles as one: the next-token distribution is the weighted mixture of its members'
(each with its own session memory), p = sum_k w_k p_k. Members may differ in size and inputs; they read
the same token stream. A member may also hear that stream transposed (`Member.shift`, a `Transposition`
view): its model reads every pitch `shift` semitones away and its distribution is moved back, so one
trained model gives several members that err differently. `EnsembleRuntime` is the realtime step,
`mixture_log_probs` the offline one, and they compute the same numbers."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from .critic import DEFAULT_CHOICE
from .memory import MemoryConfig
from .model import EventLSTM
from .runtime import BatchState, StepRuntime, StepState
from .tokens import N_PITCHES, NOTE_OFF, NOTE_ON, VOCAB_SIZE

MAX_MEMBERS = 8  # distinct models in one ensemble
MAX_VIEWS = 32  # members in all, transposed views included
MAX_VIEW_SHIFT = 12


@dataclass
class Member:
    model: EventLSTM
    memory: MemoryConfig | None
    weight: float
    shift: int = 0  # semitones: the model hears the stream transposed by this (see Transposition)


class Transposition:
    """A model hearing the stream `shift` semitones away. `inputs[token]` is what it reads for a played
    token (a pitch pushed past 0..127 is folded back by an octave, so it keeps its pitch class);
    `outcomes` moves its next-token distribution back to played pitches: a played pitch whose
    transposition leaves 0..127 gets probability 0 from this view, and the rest is renormalised."""

    def __init__(self, shift: int):
        if not (type(shift) is int and abs(shift) <= MAX_VIEW_SHIFT):
            raise ValueError(f"a transposition is an integer within ±{MAX_VIEW_SHIFT} semitones, got {shift!r}")
        self.shift = shift
        pitches = np.arange(N_PITCHES)
        moved = pitches + shift
        self.pitch_map = np.where(moved >= N_PITCHES, moved - 12, np.where(moved < 0, moved + 12, moved))
        self.inputs = np.arange(VOCAB_SIZE)
        self.source = np.arange(VOCAB_SIZE)
        inside = (moved >= 0) & (moved < N_PITCHES)
        for base in (NOTE_ON, NOTE_OFF):
            self.inputs[base:base + N_PITCHES] = base + self.pitch_map
            self.source[base:base + N_PITCHES] = base + np.clip(moved, 0, N_PITCHES - 1)
        self.unreachable = np.concatenate([base + pitches[~inside] for base in (NOTE_ON, NOTE_OFF)])

    def hear(self, sounding: np.ndarray) -> np.ndarray:
        """The view's copy of a 128-bool 'what sounds' array."""
        out = np.zeros(N_PITCHES, dtype=bool)
        out[self.pitch_map[np.asarray(sounding, dtype=bool)]] = True
        return out

    def outcomes(self, view_log_probs: torch.Tensor) -> torch.Tensor:
        """(T, V) log-probabilities over the view's tokens -> over played tokens, normalised."""
        out = view_log_probs[:, torch.as_tensor(self.source, device=view_log_probs.device)]
        out[:, torch.as_tensor(self.unreachable, device=out.device, dtype=torch.long)] = float("-inf")
        return torch.log_softmax(out, dim=-1)


def mixture_log_probs(member_log_probs: list[torch.Tensor], weights: list[float],
                      temperature: float = 1.0) -> torch.Tensor:
    """(T, V) normalised log-probabilities of each member -> the log of their weighted mixture, divided
    by the mixture's temperature (below 1 sharpens it: a mixture of calibrated members is underconfident).
    The grammar mask's softmax normalises the result."""
    w = torch.log(torch.tensor(weights, dtype=torch.float32, device=member_log_probs[0].device))
    mixed = torch.logsumexp(torch.stack([lp.float() for lp in member_log_probs]) + w[:, None, None], dim=0)
    return mixed if temperature == 1.0 else mixed / temperature


def fit_weights(member_log_probs: list[np.ndarray], iterations: int = 200) -> list[float]:
    """Mixture weights that maximise the likelihood of held-out targets (EM): member_log_probs[k][t]
    is member k's log-probability of the token that came at step t."""
    lp = np.stack(member_log_probs).astype(np.float64)  # (K, T)
    w = np.full(len(lp), 1.0 / len(lp))
    for _ in range(iterations):
        joint = lp + np.log(w)[:, None]
        post = np.exp(joint - np.logaddexp.reduce(joint, axis=0))
        new = post.mean(axis=1)
        if np.abs(new - w).max() < 1e-7:
            w = new
            break
        w = new
    return [float(x) for x in w / w.sum()]


class EnsembleState:
    """One StepState per member, checkpointed, copied and restored together."""

    __slots__ = ("members",)

    def __init__(self, members: list[StepState]):
        self.members = members

    def checkpoint(self) -> "EnsembleState":
        return EnsembleState([s.checkpoint() for s in self.members])

    def copy(self) -> "EnsembleState":
        return EnsembleState([s.copy() for s in self.members])

    def copy_from(self, other: "EnsembleState") -> None:
        for mine, theirs in zip(self.members, other.members):
            mine.copy_from(theirs)


class EnsembleBatchState:
    """K streams of every member, forked from one EnsembleState (StepRuntime.fork, or a torch stepper's)."""

    __slots__ = ("members",)

    def __init__(self, members: list[BatchState]):
        self.members = members

    @property
    def k(self) -> int:
        return self.members[0].k

    def keep(self, rows: np.ndarray) -> None:
        for m in self.members:
            m.keep(rows)

    def stream(self, k: int) -> EnsembleState:
        return EnsembleState([m.stream(k) for m in self.members])


class EnsembleRuntime:
    """Steps every member and returns the log of the mixture of their distributions (a buffer the next
    call overwrites), as StepRuntime returns logits: sampling and masking treat both alike."""

    critic_weights: dict | None = None

    critic_discriminator = None  # its realism discriminator (engine/discriminator.py), or None
    critic_choice = DEFAULT_CHOICE  # how its critic picks: "sample" or "best"

    def __init__(self, members: list[Member], temperature: float = 1.0):
        if not 2 <= len(members) <= MAX_VIEWS:
            raise ValueError(f"an ensemble has 2 to {MAX_VIEWS} members, got {len(members)}")
        shared: dict = {}  # views of one model share its refolded weights (their states stay apart)
        for m in members:
            key = (id(m.model), m.memory)
            if key not in shared:
                shared[key] = StepRuntime(m.model, m.memory)
        self.runtimes = [shared[(id(m.model), m.memory)] for m in members]
        self.views = [Transposition(m.shift) if m.shift else None for m in members]
        self.config = self.runtimes[0].config
        self.inverse_temperature = np.float32(1.0 / temperature)
        total = sum(m.weight for m in members)
        self.log_weights = np.log(np.array([m.weight / total for m in members], dtype=np.float32))
        self.parts = np.empty((len(members), self.config.vocab_size), dtype=np.float32)
        self.probs = np.empty(self.config.vocab_size, dtype=np.float32)
        self.logits = np.empty(self.config.vocab_size, dtype=np.float32)

    @property
    def weight_bytes(self) -> int:
        """Bytes a step reads: every member's matrices once per member (views re-read theirs)."""
        return sum(rt.weight_bytes for rt in self.runtimes)

    def initial_state(self) -> EnsembleState:
        return EnsembleState([rt.initial_state() for rt in self.runtimes])

    def sync_sounding(self, state: EnsembleState, sounding: np.ndarray) -> None:
        for rt, view, s in zip(self.runtimes, self.views, state.members):
            rt.sync_sounding(s, sounding if view is None else view.hear(sounding))

    def player_gates(self, pitches) -> None:
        """Ensembles do not read what the player sounds (StepRuntime.player_gates)."""
        return None

    def step(self, token: int, position: int, state: EnsembleState, role: int = 0, player=None) -> np.ndarray:
        for k, (rt, view, s) in enumerate(zip(self.runtimes, self.views, state.members)):
            self._member_part(k, rt.step(token if view is None else int(view.inputs[token]), position, s, role))
        return self._mixture()

    def replay(self, tokens: list[int], positions: list[int],
               roles: list[int] | None = None) -> tuple[EnsembleState, np.ndarray]:
        """A fresh state that has heard `tokens`, each member in one forward pass (StepRuntime.replay)."""
        states = []
        for k, (rt, view) in enumerate(zip(self.runtimes, self.views)):
            heard = tokens if view is None else [int(view.inputs[t]) for t in tokens]
            s, logits = rt.replay(heard, positions, roles)
            states.append(s)
            self._member_part(k, logits)
        return EnsembleState(states), self._mixture()

    def _member_part(self, k: int, member_logits: np.ndarray) -> None:
        part, view = self.parts[k], self.views[k]
        if view is None:
            np.copyto(part, member_logits)
        else:
            np.take(member_logits, view.source, out=part)
            part[view.unreachable] = -np.inf

    def _mixture(self) -> np.ndarray:
        for k, part in enumerate(self.parts):
            part -= part.max()
            np.exp(part, out=self.probs)
            part -= np.float32(np.log(self.probs.sum()))
            part += self.log_weights[k]
        np.logaddexp.reduce(self.parts, axis=0, out=self.logits)
        if self.inverse_temperature != 1.0:
            self.logits *= self.inverse_temperature
        return self.logits

    def fork(self, state: EnsembleState, k: int, max_tokens: int = 1024) -> EnsembleBatchState:
        return EnsembleBatchState([rt.fork(s, k, max_tokens) for rt, s in zip(self.runtimes, state.members)])

    def step_batch(self, tokens: np.ndarray, positions: np.ndarray, state: EnsembleBatchState) -> np.ndarray:
        """`step` for K streams: (K, vocab) log-probabilities of the mixture (a new array)."""
        tokens = np.asarray(tokens, dtype=np.int64)
        parts = np.empty((len(self.runtimes), len(tokens), self.config.vocab_size), dtype=np.float32)
        for k, (rt, view, s) in enumerate(zip(self.runtimes, self.views, state.members)):
            if view is None:
                part = rt.step_batch(tokens, positions, s)
            else:
                part = rt.step_batch(view.inputs[tokens], positions, s)[:, view.source]
                part[:, view.unreachable] = -np.inf
            part -= part.max(axis=1, keepdims=True)
            part -= np.log(np.exp(part).sum(axis=1, keepdims=True))
            parts[k] = part + self.log_weights[k]
        logits = np.logaddexp.reduce(parts, axis=0)
        if self.inverse_temperature != 1.0:
            logits *= self.inverse_temperature
        return logits
