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


class Sampler:
    def __init__(self, seed: int | None = None):
        self.rng = np.random.default_rng(seed)
        self._pitch_class = np.arange(128) % 12
        self._pitches = np.arange(128)

    def restrict(self, mask: np.ndarray, params: SamplingParams) -> np.ndarray:
        """The grammar mask narrowed by register and scale; never narrowed to nothing."""
        ons = mask[NOTE_ON:NOTE_OFF]
        keep = (self._pitches >= params.low) & (self._pitches <= params.high)
        if params.scale is not None:
            keep &= np.isin(self._pitch_class, params.scale)
        narrowed = mask.copy()
        narrowed[NOTE_ON:NOTE_OFF] = ons & keep
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


def key_of(pitch_counts: np.ndarray) -> tuple[int, tuple[int, ...]]:
    """Krumhansl-Schmuckler key estimate from 12 pitch-class weights: (tonic, scale)."""
    major = np.array([6.35, 2.23, 3.48, 2.33, 4.38, 4.09, 2.52, 5.19, 2.39, 3.66, 2.29, 2.88])
    minor = np.array([6.33, 2.68, 3.52, 5.38, 2.60, 3.53, 2.54, 4.75, 3.98, 2.69, 3.34, 3.17])
    best = (-2.0, 0, MAJOR)
    if pitch_counts.sum() <= 0:
        return 0, MAJOR
    for tonic in range(12):
        for profile, scale in ((major, MAJOR), (minor, MINOR)):
            r = np.corrcoef(np.roll(profile, tonic), pitch_counts)[0, 1]
            if r > best[0]:
                best = (r, tonic, scale)
    _, tonic, scale = best
    return tonic, tuple(sorted((tonic + s) % 12 for s in scale))
