"""The answer benchmark's yardstick: how far answers lie from the real continuations of the same calls.

Two judges, neither of which anything in the product reads or is fitted to (the critic lives in engine/ and
has features of its own, engine/realism.py):

* **Measures, two-sided.** Each measure below is taken for every (call, answer) pair. The real
  continuations' mean gets a 95 % bootstrap interval; an answer set passes a measure when its mean lies
  inside that interval, whichever side it would fall on. The 1-D Wasserstein distance between the two
  distributions, in units of the real ones' spread, says how far apart the whole distributions are.
* **A two-sample test.** L2-regularised logistic regression on all of MEASURES, standardised, stratified
  5-fold cross-validation repeated over shuffles: the accuracy with which it tells answers from real
  continuations. Chance is 0.5; `real_vs_real` is the same test on two random halves of the real
  continuations, the figure to read the accuracy beside.

MEASURES, each of an answer (its melody: the top note of each onset) given its call:

    notes_per_beat      onsets per beat over the answer's span
    density_vs_call     log of its onsets per beat over the call's
    unison ... wide     the melody's intervals: shares of 0, 1-2, 3-4, 5-7 and 8+ semitones (repeated notes
                        are the unisons)
    mean_interval       mean absolute interval, semitones
    up_share            share of the moving intervals that go up
    turns               changes of direction per moving interval (contour)
    range               highest minus lowest melody pitch, semitones
    range_vs_call       log of (range + 1) over the call's
    register_shift      median pitch minus the call's, semitones (signed)
    len_16th ... len_long  note lengths: shares up to a 16th, 8th, quarter, half, and longer
    length_vs_call      log of the mean note length over the call's
    distinct_pitches    distinct melody pitches over melody notes
    stall               1 when it stalls: 8+ melody notes in which every three in a row use at most two
                        pitches (repeated notes count)
    stall_share         the longest such run over the melody's notes
    key_fit             share of notes in the call's (Krumhansl) key
    new_pitch_classes   share of notes whose pitch class the call never played
    pitch_class_r       correlation of the two pitch-class histograms
    onset_share         share of onsets at bar positions where the call has one
    on_beat             share of onsets on a beat
    rest_share          share of the span in which nothing sounds
    first_onset         beats from the answer's start to its first note
    ends_on_triad       1 when the last melody note is in the call's tonic triad
    echo                1 when it copies 6+ melody notes of the call unchanged
"""
from __future__ import annotations

import math

import numpy as np

from antiphon.engine import answer_measures as am
from antiphon.engine.events import Meter, Note

from .logistic import fit_logistic

INTERVAL_BINS = (("unison", 0, 0), ("step", 1, 2), ("third", 3, 4), ("leap", 5, 7), ("wide", 8, 127))
LENGTH_BINS = (("len_16th", 0, 6), ("len_8th", 7, 12), ("len_quarter", 13, 24), ("len_half", 25, 48),
               ("len_long", 49, 1 << 30))
MEASURES = ("notes_per_beat", "density_vs_call", *(b[0] for b in INTERVAL_BINS), "mean_interval", "up_share", "turns",
            "range", "range_vs_call", "register_shift", *(b[0] for b in LENGTH_BINS), "length_vs_call",
            "distinct_pitches", "stall", "stall_share", "key_fit", "new_pitch_classes", "pitch_class_r",
            "onset_share", "on_beat", "rest_share", "first_onset", "ends_on_triad", "echo")
STALL_NOTES = 8


def longest_stall(pitches: list[int]) -> int:
    """Notes in the longest run in which every three in a row use at most two pitches (0 under three notes)."""
    if len(pitches) < 3:
        return 0
    best = run = 0
    for i in range(len(pitches) - 2):
        run = run + 1 if len(set(pitches[i:i + 3])) <= 2 else 0
        best = max(best, run)
    return best + 2 if best else 0


def _log_ratio(a: float, b: float, floor: float) -> float:
    return math.log((a + floor) / (b + floor))


def measures(call: list[Note], answer: list[Note], meter: Meter, span: int, start: int,
             key: am.Key | None = None) -> np.ndarray:
    """MEASURES of `answer` (notes in ticks, its span from tick `start`, `span` ticks long) given `call`."""
    key = key or am.key_of_notes(call)
    beat = meter.ticks_per_beat
    call_span = max(max(n.end for n in call) - min(n.start for n in call), 1)
    call_density = am.density(call, call_span, meter)
    out = dict.fromkeys(MEASURES, 0.0)
    if not answer:
        out.update(density_vs_call=_log_ratio(0.0, call_density, 0.1), rest_share=1.0, first_onset=span / beat,
                   key_fit=1.0, range_vs_call=_log_ratio(0.0, 0.0, 1.0))
        return np.array([out[m] for m in MEASURES])
    line = am.melody(answer)
    pitches = [n.pitch for n in line]
    steps = np.diff(pitches) if len(pitches) > 1 else np.zeros(0)
    size = np.abs(steps)
    density = am.density(answer, span, meter)
    out["notes_per_beat"] = density
    out["density_vs_call"] = _log_ratio(density, call_density, 0.1)
    for name, lo, hi in INTERVAL_BINS:
        out[name] = float(np.mean((size >= lo) & (size <= hi))) if len(size) else 0.0
    out["mean_interval"] = float(size.mean()) if len(size) else 0.0
    moving = steps[steps != 0]
    out["up_share"] = float(np.mean(moving > 0)) if len(moving) else 0.5
    out["turns"] = float(np.mean(np.diff(np.sign(moving)) != 0)) if len(moving) > 1 else 0.0
    rng = max(pitches) - min(pitches)
    call_line = am.melody(call)
    call_range = max(n.pitch for n in call_line) - min(n.pitch for n in call_line)
    out["range"] = float(rng)
    out["range_vs_call"] = _log_ratio(rng, call_range, 1.0)
    out["register_shift"] = am.median_pitch(answer) - am.median_pitch(call)
    lengths = np.array([n.duration for n in line])
    for name, lo, hi in LENGTH_BINS:
        out[name] = float(np.mean((lengths >= lo) & (lengths <= hi)))
    out["length_vs_call"] = math.log(lengths.mean() / np.mean([n.duration for n in call_line]))
    out["distinct_pitches"] = len(set(pitches)) / len(pitches)
    stall = longest_stall(pitches)
    out["stall"] = float(stall >= STALL_NOTES)
    out["stall_share"] = stall / len(pitches)
    out["key_fit"] = am.key_fit(answer, key)
    call_pcs = {n.pitch % 12 for n in call}
    out["new_pitch_classes"] = float(np.mean([n.pitch % 12 not in call_pcs for n in answer]))
    out["pitch_class_r"] = am.pitch_class_kinship(call, answer)
    out["onset_share"] = am.onset_share(call, answer, meter)
    onsets = sorted({n.start for n in answer})
    out["on_beat"] = float(np.mean([t % beat == 0 for t in onsets]))
    sounding = np.zeros(span, dtype=bool)
    for n in answer:
        a, z = max(n.start - start, 0), min(n.end - start, span)
        if z > a:
            sounding[a:z] = True
    out["rest_share"] = 1.0 - float(sounding.mean())
    out["first_onset"] = (onsets[0] - start) / beat
    out["ends_on_triad"] = float(am.ends_on(answer, key, "stable", line))
    out["echo"] = float(am.longest_echo(call, answer, call_line, line) >= am.ECHO_NOTES)
    return np.array([out[m] for m in MEASURES])


# ------------------------------------------------------------------------------------ two-sided comparison
def bootstrap_interval(x: np.ndarray, rng: np.random.Generator, n: int = 2000, level: float = 0.95) -> tuple[float, float]:
    """The percentile bootstrap interval of the mean of each column of x: (lo, hi) arrays."""
    idx = rng.integers(0, len(x), size=(n, len(x)))
    boots = x[idx].mean(axis=1)
    a = (1 - level) / 2
    return np.quantile(boots, a, axis=0), np.quantile(boots, 1 - a, axis=0)


def wasserstein(a: np.ndarray, b: np.ndarray) -> float:
    """1-D earth mover's distance between two samples (the mean gap between their quantile functions)."""
    q = np.linspace(0, 1, 101)
    return float(np.mean(np.abs(np.quantile(a, q) - np.quantile(b, q))))


def compare(answers: np.ndarray, real: np.ndarray, seed: int = 0) -> dict:
    """Per measure: the answers' mean, the real continuations' mean and 95 % bootstrap interval, whether the
    answers' mean lies inside it, and the Wasserstein distance in units of the real ones' spread."""
    rng = np.random.default_rng(seed)
    lo, hi = bootstrap_interval(real, rng)
    spread = real.std(axis=0)
    out = {}
    for j, m in enumerate(MEASURES):
        mean = float(answers[:, j].mean())
        scale = spread[j] if spread[j] > 1e-9 else 1.0
        out[m] = {"mean": round(mean, 4), "real": round(float(real[:, j].mean()), 4),
                  "real_95": [round(float(lo[j]), 4), round(float(hi[j]), 4)],
                  "within": bool(lo[j] - 1e-9 <= mean <= hi[j] + 1e-9),
                  "wasserstein": round(wasserstein(answers[:, j], real[:, j]) / scale, 4)}
    return out


# --------------------------------------------------------------------------------------- two-sample test
def cv_accuracy(a: np.ndarray, b: np.ndarray, folds: int = 5, repeats: int = 10, seed: int = 0,
                l2: float = 1.0) -> float:
    """How often a logistic regression trained on the other folds tells a row of `a` from one of `b`
    (stratified k-fold cross-validation, repeated over shuffles; each class weighed equally)."""
    folds = min(folds, len(a), len(b))
    if folds < 2:  # too few to hold any out: nothing can be told
        return 0.5
    rng = np.random.default_rng(seed)
    x = np.vstack([a, b])
    y = np.concatenate([np.ones(len(a)), np.zeros(len(b))])
    scores = []
    for _ in range(repeats):
        fold = np.empty(len(y), dtype=int)
        for cls in (0, 1):
            idx = rng.permutation(np.flatnonzero(y == cls))
            fold[idx] = np.arange(len(idx)) % folds
        right = np.zeros(2)
        for f in range(folds):
            train, test = fold != f, fold == f
            mu, sd = x[train].mean(axis=0), x[train].std(axis=0) + 1e-6
            w = fit_logistic((x[train] - mu) / sd, y[train], l2)
            z = np.hstack([(x[test] - mu) / sd, np.ones((test.sum(), 1))]) @ w
            guess = z > 0
            for cls in (0, 1):
                right[cls] += np.sum(guess[y[test] == cls] == bool(cls))
        scores.append(0.5 * (right[1] / len(a) + right[0] / len(b)))
    return float(np.mean(scores))


def two_sample(answers: np.ndarray, real: np.ndarray, seed: int = 0) -> dict:
    """{"accuracy": answers against real continuations, "real_vs_real": two random halves of the real ones
    (the baseline), "features": the measures it reads}."""
    rng = np.random.default_rng(seed)
    halves = []
    for r in range(5):
        idx = rng.permutation(len(real))
        half = len(idx) // 2
        halves.append(cv_accuracy(real[idx[:half]], real[idx[half:2 * half]], seed=seed + r))
    return {"accuracy": round(cv_accuracy(answers, real, seed=seed), 3), "real_vs_real": round(float(np.mean(halves)), 3),
            "features": len(MEASURES)}
