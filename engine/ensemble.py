"""An ensemble of styles as one: the next-token distribution is the weighted mixture of its members'
(each with its own session memory), p = sum_k w_k p_k. Members may differ in size and inputs; they read
the same token stream. `EnsembleRuntime` is the realtime step, `mixture_log_probs` the offline one, and
they compute the same numbers."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from .memory import MemoryConfig
from .model import EventLSTM
from .runtime import StepRuntime, StepState

MAX_MEMBERS = 8


@dataclass
class Member:
    model: EventLSTM
    memory: MemoryConfig | None
    weight: float


def mixture_log_probs(member_log_probs: list[torch.Tensor], weights: list[float]) -> torch.Tensor:
    """(T, V) normalised log-probabilities of each member -> those of their weighted mixture."""
    w = torch.log(torch.tensor(weights, dtype=torch.float32, device=member_log_probs[0].device))
    return torch.logsumexp(torch.stack([lp.float() for lp in member_log_probs]) + w[:, None, None], dim=0)


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


class EnsembleRuntime:
    """Steps every member and returns the log of the mixture of their distributions (a buffer the next
    call overwrites), as StepRuntime returns logits: sampling and masking treat both alike."""

    def __init__(self, members: list[Member]):
        if not 2 <= len(members) <= MAX_MEMBERS:
            raise ValueError(f"an ensemble has 2 to {MAX_MEMBERS} members, got {len(members)}")
        self.runtimes = [StepRuntime(m.model, m.memory) for m in members]
        self.config = self.runtimes[0].config
        total = sum(m.weight for m in members)
        self.log_weights = np.log(np.array([m.weight / total for m in members], dtype=np.float32))
        self.parts = np.empty((len(members), self.config.vocab_size), dtype=np.float32)
        self.probs = np.empty(self.config.vocab_size, dtype=np.float32)
        self.logits = np.empty(self.config.vocab_size, dtype=np.float32)

    @property
    def weight_bytes(self) -> int:
        return sum(rt.weight_bytes for rt in self.runtimes)

    def initial_state(self) -> EnsembleState:
        return EnsembleState([rt.initial_state() for rt in self.runtimes])

    def sync_sounding(self, state: EnsembleState, sounding: np.ndarray) -> None:
        for rt, s in zip(self.runtimes, state.members):
            rt.sync_sounding(s, sounding)

    def step(self, token: int, position: int, state: EnsembleState) -> np.ndarray:
        for k, (rt, s) in enumerate(zip(self.runtimes, state.members)):
            part = self.parts[k]
            np.copyto(part, rt.step(token, position, s))
            part -= part.max()
            np.exp(part, out=self.probs)
            part -= np.float32(np.log(self.probs.sum()))
            part += self.log_weights[k]
        np.logaddexp.reduce(self.parts, axis=0, out=self.logits)
        return self.logits
