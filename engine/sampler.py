"""Choosing the next token: grammar mask, temperature, top-p, key lock and register limits; seeded."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .tokens import NOTE_OFF, NOTE_ON

MAJOR = (0, 2, 4, 5, 7, 9, 11)
MINOR = (0, 2, 3, 5, 7, 8, 10)


@dataclass
class SamplingParams:
    temperature: float = 1.0
    top_p: float = 0.95
    low: int = 0  # lowest note the generator may start
    high: int = 127
    scale: tuple[int, ...] | None = None  # pitch classes allowed for note-ons, None = all


_PITCHES = np.arange(128)


def allowed_pitches(params: SamplingParams) -> np.ndarray:
    """The pitches a note-on may take under the register limits and the key lock."""
    keep = (_PITCHES >= params.low) & (_PITCHES <= params.high)
    if params.scale is not None:
        keep &= np.isin(_PITCHES % 12, params.scale)
    return keep


class Sampler:
    def __init__(self, seed: int | None = None):
        self.rng = np.random.default_rng(seed)

    def restrict(self, mask: np.ndarray, params: SamplingParams) -> np.ndarray:
        """The grammar mask narrowed by register and scale; never narrowed to nothing."""
        narrowed = mask.copy()
        narrowed[NOTE_ON:NOTE_OFF] &= allowed_pitches(params)
        return narrowed if narrowed.any() else mask

    def sample(self, logits: np.ndarray, mask: np.ndarray, params: SamplingParams) -> int:
        mask = self.restrict(mask, params)
        allowed = np.flatnonzero(mask)
        z = logits[allowed].astype(np.float64)
        if params.temperature <= 1e-3:
            return int(allowed[np.argmax(z)])
        z /= params.temperature
        z -= z.max()
        p = np.exp(z)
        p /= p.sum()
        if params.top_p < 1.0:
            order = np.argsort(-p)
            cum = np.cumsum(p[order])
            cut = int(np.searchsorted(cum, params.top_p)) + 1
            keep = order[:cut]
            q = p[keep] / p[keep].sum()
            return int(allowed[keep[self.rng.choice(len(keep), p=q)]])
        return int(allowed[self.rng.choice(len(allowed), p=p)])


class BatchSampler:
    """Sampler for K streams at once: the same distribution per row (grammar mask narrowed by register
    and scale, temperature, top-p), drawn with one uniform number per row."""

    def __init__(self, rng: np.random.Generator):
        self.rng = rng

    def restrict(self, masks: np.ndarray, params: SamplingParams) -> np.ndarray:
        narrowed = masks.copy()
        narrowed[:, NOTE_ON:NOTE_OFF] &= allowed_pitches(params)
        empty = ~narrowed.any(axis=1)
        narrowed[empty] = masks[empty]
        return narrowed

    def sample(self, logits: np.ndarray, masks: np.ndarray, params: SamplingParams) -> np.ndarray:
        masks = self.restrict(masks, params)
        cols = np.flatnonzero(masks.any(axis=0))  # what no row may take has no say: drawn among the rest
        return cols[self._draw(logits[:, cols], masks[:, cols], params)]

    def _draw(self, logits: np.ndarray, masks: np.ndarray, params: SamplingParams) -> np.ndarray:
        z = np.where(masks, logits.astype(np.float64), -np.inf)
        if params.temperature <= 1e-3:
            return np.argmax(z, axis=1)
        z /= params.temperature
        z -= z.max(axis=1, keepdims=True)
        p = np.exp(z)
        p /= p.sum(axis=1, keepdims=True)
        if params.top_p < 1.0:
            order = np.argsort(-p, axis=1, kind="stable")
            ps = np.take_along_axis(p, order, axis=1)
            cum = np.cumsum(ps, axis=1)
            rows = np.arange(len(p))
            kept = (cum - ps < params.top_p).sum(axis=1)  # the smallest set reaching top_p: a prefix
            u = np.maximum(self.rng.random(len(p)), 1e-12) * cum[rows, kept - 1]
            pick = np.minimum(((cum < u[:, None]) & (np.arange(p.shape[1]) < kept[:, None])).sum(axis=1), kept - 1)
            return order[rows, pick]
        cum = np.cumsum(p, axis=1)
        u = np.maximum(self.rng.random(len(p)), 1e-12) * cum[:, -1]
        return np.minimum((cum < u[:, None]).sum(axis=1), p.shape[1] - 1)


_MAJOR_PROFILE = np.array([6.35, 2.23, 3.48, 2.33, 4.38, 4.09, 2.52, 5.19, 2.39, 3.66, 2.29, 2.88])
_MINOR_PROFILE = np.array([6.33, 2.68, 3.52, 5.38, 2.60, 3.53, 2.54, 4.75, 3.98, 2.69, 3.34, 3.17])
# the 24 key profiles (12 major tonics, then 12 minor), each centred and scaled: one product scores them all
_PROFILES = np.array([np.roll(p, t) for p in (_MAJOR_PROFILE, _MINOR_PROFILE) for t in range(12)])
_PROFILES = (_PROFILES - _PROFILES.mean(axis=1, keepdims=True)) / _PROFILES.std(axis=1, keepdims=True)


def key_of(pitch_counts: np.ndarray) -> tuple[int, tuple[int, ...]]:
    """Krumhansl-Schmuckler key estimate from 12 pitch-class weights: (tonic, scale). The key whose profile
    correlates best with the weights (the first such, major before minor, on a tie)."""
    counts = np.asarray(pitch_counts, dtype=float)
    if counts.sum() <= 0 or counts.std() == 0:
        return 0, MAJOR
    r = _PROFILES @ ((counts - counts.mean()) / counts.std()) / 12
    best = int(np.argmax(r))
    tonic, scale = best % 12, (MAJOR if best < 12 else MINOR)
    return tonic, tuple(sorted((tonic + s) % 12 for s in scale))
