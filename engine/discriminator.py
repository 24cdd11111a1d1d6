"""The critic's realism term: a discriminator that tells a call's real continuation from the style's own
sampled answer to the same call, trained offline on the training split (training/discriminator_fit.py) and
stored in the style's metadata under "critic": {"discriminator": {...}}.

It is a logistic regression on FEATURES, its own description of an answer given its call (the answer
benchmark's two-sample test reads different ones, training/realism.py, and is never fitted to):

    fall_big fall_leap fall_step same rise_step rise_leap rise_big
                        the melody's signed intervals: shares below -7, -7..-3, -2..-1, 0, 1..2, 3..7, above 7
    ioi_16th ... ioi_long  time between melody onsets: shares up to a 16th, an 8th, a quarter, a half, longer
    ioi_same            share of consecutive inter-onset times that are equal
    repeat_run          the longest run of one repeated pitch, over the melody's notes
    pc_entropy          entropy of its pitch classes (bits), duration-weighted
    spread_vs_call      log of its pitch standard deviation (+1) over the call's
    mean_shift          its mean pitch minus the call's, in octaves
    onsets_vs_call      log of its onsets per beat over the call's
    in_scale            share of notes in the call's key
    first_gap           beats from the answer's start to its first onset
    last_stable         1 when the last melody note is in the call's tonic triad

`log_odds(...)` is the term: how much more likely the discriminator finds it real than sampled.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from . import answer_measures as am
from .events import Meter, Note

FEATURES = ("fall_big", "fall_leap", "fall_step", "same", "rise_step", "rise_leap", "rise_big",
            "ioi_16th", "ioi_8th", "ioi_quarter", "ioi_half", "ioi_long", "ioi_same", "repeat_run", "pc_entropy",
            "spread_vs_call", "mean_shift", "onsets_vs_call", "in_scale", "first_gap", "last_stable")
_INTERVAL_EDGES = np.array([-7.5, -2.5, -0.5, 0.5, 2.5, 7.5])
_IOI_EDGES = np.array([6.5, 12.5, 24.5, 48.5])
LIMIT = 10.0  # |log-odds| is clipped here: the term explains, it does not overrule every other


@dataclass(frozen=True)
class CallSummary:
    """What the features need of the call, measured once per call."""

    key: am.Key
    pitch_std: float
    mean_pitch: float
    onsets_per_beat: float

    @classmethod
    def of(cls, call: list[Note], meter: Meter, key: am.Key | None = None) -> "CallSummary":
        pitches = np.array([n.pitch for n in call], dtype=float) if call else np.zeros(1)
        span = max(max(n.end for n in call) - min(n.start for n in call), 1) if call else 1
        return cls(key or am.key_of_notes(call), float(pitches.std()), float(pitches.mean()),
                   am.density(call, span, meter) if call else 0.0)


def features(call: CallSummary, answer: list[Note], meter: Meter, start: int, span: int,
             line: list[Note] | None = None) -> np.ndarray:
    """FEATURES of `answer` (its span: `span` ticks from tick `start`) given the call's summary."""
    out = np.zeros(len(FEATURES))
    if not answer:
        out[FEATURES.index("onsets_vs_call")] = math.log(0.1 / (call.onsets_per_beat + 0.1))
        out[FEATURES.index("first_gap")] = span / meter.ticks_per_beat
        out[FEATURES.index("in_scale")] = 1.0
        return out
    line = am.melody(answer) if line is None else line
    pitches = np.array([n.pitch for n in line])
    onsets = np.array([n.start for n in line])
    if len(pitches) > 1:
        out[0:7] = np.bincount(np.searchsorted(_INTERVAL_EDGES, np.diff(pitches)), minlength=7) / (len(pitches) - 1)
        ioi = np.diff(onsets)
        out[7:12] = np.bincount(np.searchsorted(_IOI_EDGES, ioi), minlength=5) / len(ioi)
        out[12] = float(np.mean(ioi[1:] == ioi[:-1])) if len(ioi) > 1 else 0.0
        runs = np.diff(np.flatnonzero(np.concatenate([[True], pitches[1:] != pitches[:-1], [True]])))
        out[13] = runs.max() / len(pitches)
    else:
        out[13] = 1.0
    w = am.pitch_class_weights(answer)
    p = w[w > 0] / w.sum()
    out[14] = float(-(p * np.log2(p)).sum())
    all_pitches = np.array([n.pitch for n in answer], dtype=float)
    out[15] = math.log((all_pitches.std() + 1.0) / (call.pitch_std + 1.0))
    out[16] = (all_pitches.mean() - call.mean_pitch) / 12.0
    out[17] = math.log((am.density(answer, span, meter) + 0.1) / (call.onsets_per_beat + 0.1))
    out[18] = am.key_fit(answer, call.key)
    out[19] = (onsets[0] - start) / meter.ticks_per_beat
    out[20] = float(line[-1].pitch % 12 in call.key.triad)
    return out


@dataclass(frozen=True)
class Discriminator:
    mean: np.ndarray
    scale: np.ndarray
    coef: np.ndarray
    bias: float

    def log_odds(self, x: np.ndarray) -> np.ndarray:
        """Log-odds that each row of features (or one row) is a real continuation, clipped to ±LIMIT."""
        z = ((np.asarray(x, dtype=float) - self.mean) / self.scale) @ self.coef + self.bias
        return np.clip(z, -LIMIT, LIMIT)

    def to_meta(self) -> dict:
        return {"features": list(FEATURES), "mean": [round(float(v), 6) for v in self.mean],
                "scale": [round(float(v), 6) for v in self.scale], "coef": [round(float(v), 6) for v in self.coef],
                "bias": round(float(self.bias), 6)}

    @classmethod
    def from_meta(cls, meta: dict | None) -> "Discriminator | None":
        """From a style's metadata (None when it has none); a malformed one raises ValueError."""
        if meta is None:
            return None
        if not isinstance(meta, dict) or meta.get("features") != list(FEATURES):
            raise ValueError(f"the critic's discriminator must list the features {FEATURES}")
        arrays = []
        for key in ("mean", "scale", "coef"):
            v = meta.get(key)
            if (not isinstance(v, list) or len(v) != len(FEATURES)
                    or not all(type(x) in (int, float) and math.isfinite(x) and abs(x) <= 1e6 for x in v)):
                raise ValueError(f"the critic's discriminator: {key} must be {len(FEATURES)} finite numbers")
            arrays.append(np.array(v, dtype=float))
        bias = meta.get("bias")
        if type(bias) not in (int, float) or not math.isfinite(bias) or abs(bias) > 1e6:
            raise ValueError("the critic's discriminator: bias must be a finite number")
        if (arrays[1] <= 0).any():
            raise ValueError("the critic's discriminator: every scale must be positive")
        return cls(arrays[0], arrays[1], arrays[2], float(bias))
