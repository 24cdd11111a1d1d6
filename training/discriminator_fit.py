"""Training the critic's realism discriminator (engine/discriminator.py) on the training split.

For every training call (the first bars of a piece, training/calls.py) two answers are described by the
discriminator's features: the piece's own continuation, and what the style samples for that call as the
live session would play it with one candidate (one sample per seed). A logistic regression learns to tell
them apart; its cross-validated accuracy on those pairs says how much it sees.
"""
from __future__ import annotations

import time
from dataclasses import replace

import numpy as np

from antiphon.engine.discriminator import FEATURES, CallSummary, Discriminator, features
from antiphon.engine.session import SessionParams

from .answer_bench import answer, answer_span
from .calls import HeldOutCall, held_out_calls
from .logistic import fit_logistic


def real_features(held: HeldOutCall, bars: int, summary: CallSummary) -> np.ndarray:
    bar = held.meter.ticks_per_bar
    start = held.continuation_start
    return features(summary, held.continuation, held.meter, start, bars * bar)


def sampled_features(runtime, held: HeldOutCall, params: SessionParams, seed: int,
                     summary: CallSummary) -> np.ndarray:
    notes, session = answer(runtime, held, params, seed)
    start, end = answer_span(held, session)
    return features(summary, [n for n in notes if n.start < end], held.meter, start, end - start)


def collect(style, sets=("bach", "folk"), split: str = "train", limit: int | None = 200, seeds: int = 1,
            params: SessionParams = SessionParams(), log=None) -> tuple[np.ndarray, np.ndarray]:
    """(real continuations' features, the style's samples' features) over the sets' calls."""
    runtime = style.runtime()
    params = replace(params, candidates=1)
    real, sampled = [], []
    t0 = time.perf_counter()
    for name in sets:
        calls = held_out_calls(name, split, continuation_bars=params.response_bars, limit=limit)
        for held in calls:
            summary = CallSummary.of(held.call, held.meter)
            real.append(real_features(held, params.response_bars, summary))
            for seed in range(seeds):
                sampled.append(sampled_features(runtime, held, params, seed, summary))
        if log:
            log(f"{name}: {len(calls)} {split} calls, {time.perf_counter() - t0:.0f} s")
    return np.array(real), np.array(sampled)


def fit(real: np.ndarray, sampled: np.ndarray, l2: float = 1.0) -> Discriminator:
    """The discriminator (each class weighed equally)."""
    x = np.vstack([real, sampled])
    y = np.concatenate([np.ones(len(real)), np.zeros(len(sampled))])
    mean, scale = x.mean(axis=0), x.std(axis=0)
    scale = np.where(scale > 1e-6, scale, 1.0)
    weight = np.where(y == 1, len(y) / (2 * len(real)), len(y) / (2 * len(sampled)))
    w = fit_logistic((x - mean) / scale, y, l2, sample_weight=weight)
    return Discriminator(mean, scale, w[:-1], float(w[-1]))


def cross_validated(real: np.ndarray, sampled: np.ndarray, folds: int = 5, seed: int = 0) -> float:
    """Balanced accuracy of the discriminator on pairs it was not fitted on."""
    rng = np.random.default_rng(seed)
    fr = rng.permutation(len(real)) % folds
    fs = rng.permutation(len(sampled)) % folds
    right_r = right_s = 0
    for f in range(folds):
        d = fit(real[fr != f], sampled[fs != f])
        right_r += int((d.log_odds(real[fr == f]) > 0).sum())
        right_s += int((d.log_odds(sampled[fs == f]) <= 0).sum())
    return 0.5 * (right_r / len(real) + right_s / len(sampled))


def report(d: Discriminator, real: np.ndarray, sampled: np.ndarray) -> dict:
    """What a style's metadata keeps of the fit: sizes, accuracy, the features that weigh most."""
    order = np.argsort(-np.abs(d.coef))[:6]
    return {"real": len(real), "sampled": len(sampled), "cv_accuracy": round(cross_validated(real, sampled), 3),
            "strongest": {FEATURES[i]: round(float(d.coef[i]), 3) for i in order}}
