"""Session memory: a cache of the stream's own past (a neural cache, Grave et al. 2017).

Every step leaves its LSTM output (unit length) as a key and the token that followed as the value. The
next-token distribution becomes `(1 - m) * p_model + m * p_memory`, where p_memory weighs each past
value by exp(theta * cosine(current output, key)) over the last `window` steps: what followed moments
like this one earlier in the piece or the session. The memory's share m = mix * s ** gate grows with s,
the best cosine match: it speaks up when the music is back somewhere it has been (a chorale's repeated
first phrases, a player's motif) and stays quiet otherwise. It needs no retraining. Offline scoring
(`memory_log_probs`) and the realtime step (`MemoryTrace` + StepRuntime) compute the same numbers.
"""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import numpy as np
import torch

from .tokens import VOCAB_SIZE

ROLLBACK_SLACK = 1024  # steps a stream may be rolled back (session checkpoints) with its memory intact


@dataclass(frozen=True)
class MemoryConfig:
    theta: float  # sharpness of the match, per unit of cosine similarity
    mix: float  # probability given to the memory at a perfect match
    gate: float = 0.0  # exponent of the best match's cosine in the memory's share (0: always `mix`)
    window: int = 2048  # past steps it looks at

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d) -> "MemoryConfig":
        if not isinstance(d, dict) or set(d) - {"theta", "mix", "gate", "window"} or not {"theta", "mix"} <= set(d):
            raise ValueError(f"memory must be an object with theta, mix and optionally gate and window, "
                             f"got {d!r}"[:200])
        theta, mix, gate, window = d["theta"], d["mix"], d.get("gate", 0.0), d.get("window", 2048)
        if not (type(theta) in (int, float) and math.isfinite(theta) and 0 < theta <= 1000):
            raise ValueError(f"memory theta must be a number in (0, 1000], got {theta!r}")
        if not (type(mix) in (int, float) and 0 < mix < 1):
            raise ValueError(f"memory mix must be a number in (0, 1), got {mix!r}")
        if not (type(gate) in (int, float) and 0 <= gate <= 100):
            raise ValueError(f"memory gate must be a number in [0, 100], got {gate!r}")
        if not (type(window) is int and 1 <= window <= 65536):
            raise ValueError(f"memory window must be an integer in 1..65536, got {window!r}")
        return cls(float(theta), float(mix), float(gate), window)


def unit_rows(h: torch.Tensor) -> torch.Tensor:
    return h / h.norm(dim=-1, keepdim=True).clamp_min(1e-12)


@torch.no_grad()
def memory_recall(outputs: torch.Tensor, targets: torch.Tensor, theta: float, window: int,
                  block: int = 1024) -> tuple[torch.Tensor, torch.Tensor]:
    """One stream from its start: LSTM outputs (T, H) of each step and targets (T,), the token that
    followed each step -> p_memory (T, V) and the best cosine match (T,), -inf where step t's memory
    (steps max(0, t - window) .. t - 1) is empty (step 0)."""
    T = len(targets)
    keys = unit_rows(outputs.float())
    p_mem = torch.zeros(T, VOCAB_SIZE, device=keys.device)
    best = torch.full((T,), float("-inf"), device=keys.device)
    for s in range(1, T, block):
        e = min(T, s + block)
        lo = max(0, s - window)
        cos = keys[s:e] @ keys[lo:e - 1].T  # row t - s, column i - lo
        t = torch.arange(s, e, device=cos.device)[:, None]
        i = torch.arange(lo, e - 1, device=cos.device)[None, :]
        cos.masked_fill_((i >= t) | (i < t - window), float("-inf"))
        best[s:e] = cos.max(dim=-1).values
        p_mem[s:e].scatter_add_(1, targets[lo:e - 1].expand(e - s, -1), torch.softmax(theta * cos, dim=-1))
    return p_mem, best


def mix_in(logits: torch.Tensor, p_mem: torch.Tensor, best: torch.Tensor, mix: float, gate: float) -> torch.Tensor:
    """log((1 - m) softmax(logits) + m p_memory), m = mix * max(best, 0) ** gate per step (0 without
    memory); in log space, so that a token the model all but rules out keeps a finite score."""
    share = torch.where(torch.isfinite(best), mix * best.clamp_min(0.0) ** gate, torch.zeros_like(best))[:, None]
    return torch.logaddexp(torch.log1p(-share) + torch.log_softmax(logits.float(), dim=-1),
                           torch.log(share) + torch.log(p_mem))


def memory_log_probs(logits: torch.Tensor, outputs: torch.Tensor, targets: torch.Tensor,
                     cfg: MemoryConfig) -> torch.Tensor:
    """One stream from its start -> the mixed log-probabilities (T, V) that the realtime step computes."""
    p_mem, best = memory_recall(outputs, targets, cfg.theta, cfg.window)
    return mix_in(logits, p_mem, best, cfg.mix, cfg.gate)


class MemoryTrace:
    """The realtime memory's storage: a ring of keys and values that stream states index by their own
    length, so that a state restored from a checkpoint (sharing this trace) sees exactly its past as long
    as it was rolled back at most ROLLBACK_SLACK steps."""

    def __init__(self, cfg: MemoryConfig, hidden: int):
        self.cfg = cfg
        self.capacity = cfg.window + ROLLBACK_SLACK
        self.keys = np.zeros((self.capacity, hidden), dtype=np.float32)
        self.values = np.zeros(self.capacity, dtype=np.int64)
        self.high = 0  # steps ever written (the highest length a state sharing this trace reached)

    def copy(self) -> "MemoryTrace":
        t = MemoryTrace.__new__(MemoryTrace)
        t.cfg, t.capacity, t.high = self.cfg, self.capacity, self.high
        t.keys, t.values = self.keys.copy(), self.values.copy()
        return t

    def write(self, length: int, output: np.ndarray, value: int) -> None:
        slot = length % self.capacity
        norm = float(np.sqrt(output @ output))
        np.multiply(output, 1.0 / max(norm, 1e-12), out=self.keys[slot])
        self.values[slot] = value
        self.high = max(self.high, length + 1)

    def span(self, length: int) -> tuple[int, int]:
        """The steps a state of this length remembers, [lo, length)."""
        return max(0, length - self.cfg.window, self.high - self.capacity), length
