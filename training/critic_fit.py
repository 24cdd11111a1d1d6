"""Fitting the critic's weights on valid calls, with their real continuations as the target.

For every valid call (training/calls.py) the live session plans K candidates, as it would play; each
candidate's critic terms and its answer measures are kept, beside the measures of the piece's own
continuation. The weights are then chosen so that the candidates the critic picks reach, on average, the
real continuations' measures (a shortfall on any measure costs, being better earns a little), while
keeping what the model itself finds likely: the objective is

    sum over measures of min(gap - MARGIN, 0) + 0.1 * clip(gap, -1, 1)  +  mean per-token log-likelihood chosen

where gap is the chosen answers' mean minus the real continuations' mean, in units of `SCALES`, signed
so that positive is better, for each call set (averaged over the sets). Weights are non-negative (each term points the way it should); the search is
coordinate ascent from the defaults over multiplicative steps. Test calls are never used here.
"""
from __future__ import annotations

import time
from dataclasses import dataclass, replace

import numpy as np

from antiphon.engine.answer_measures import key_of_notes, measure
from antiphon.engine.critic import DEFAULT_WEIGHTS, FOLLOW_SEMITONES, TERMS, term_matrix
from antiphon.engine.session import SessionParams

from .answer_bench import BETTER, MEASURES, answer, as_row
from .calls import held_out_calls

SCALES = {"key_fit": 0.02, "pitch_class_r": 0.05, "onset_share": 0.02, "register_distance": 0.5, "loops": 0.02,
          "ends_on_tonic_triad": 0.05, "echo": 0.05, "answered": 0.01}
STEPS = (0.0, 0.25, 0.5, 0.75, 1.33, 2.0, 4.0)


@dataclass
class FitData:
    terms: list[np.ndarray]  # per call: (K, len(TERMS))
    measures: list[np.ndarray]  # per call: (K, len(MEASURES)), each candidate's answer measures
    real: np.ndarray  # (calls, len(MEASURES)): the real continuations'
    sets: list[str]  # per call: the call set it came from (each set must reach its own real continuations)
    candidates: list = None  # per call: (the critic's call, [(notes, per-token log-likelihood)], span), to
    # compute the terms again when their definitions change


def collect(style, sets=("bach", "folk"), split: str = "valid", k: int = 64, seeds: int = 1,
            params: SessionParams = SessionParams(), limit: int | None = None, log=None) -> FitData:
    runtime = style.runtime()
    params = replace(params, candidates=k)
    terms, measures, real, names, kept = [], [], [], [], []
    t0 = time.perf_counter()
    for name in sets:
        calls = held_out_calls(name, split, continuation_bars=params.response_bars, limit=limit)
        for held in calls:
            real_row = as_row(measure(held.call, held.continuation, held.meter))
            for seed in range(seeds):
                _, session = answer(runtime, held, params, seed)
                if not session.last_candidates:
                    continue
                span = params.response_bars * held.meter.ticks_per_bar
                cands = [(c.notes, c.per_token) for c in session.last_candidates]
                terms.append(term_matrix(session.last_call, cands, span))
                kept.append((session.last_call, cands, span))
                key = key_of_notes(held.call)
                measures.append(np.array([[as_row(measure(held.call, n, held.meter, key))[m] for m in MEASURES]
                                          for n, _ in cands]))
                real.append([real_row[m] for m in MEASURES])
                names.append(name)
        if log:
            log(f"{name}: {len(calls)} calls collected, {time.perf_counter() - t0:.0f} s")
    return FitData(terms, measures, np.array(real), names, kept)


def retermed(data: FitData) -> FitData:
    """The same candidates with the critic's terms computed again (after a term's definition changed)."""
    return replace(data, terms=[term_matrix(call, cands, span) for call, cands, span in data.candidates])


def chosen(data: FitData, w: np.ndarray, k: int | None = None) -> list[int]:
    """The candidate the critic plays for each call: as engine.critic.choose, the best score among those
    keeping the rules the session applies by default (no loop, then the call's register)."""
    loops, register = MEASURES.index("loops"), MEASURES.index("register_distance")
    picks = []
    for t, m in zip(data.terms, data.measures):
        scores = t[:k] @ w
        rules = np.stack([m[:k, loops] == 0, m[:k, register] <= FOLLOW_SEMITONES], axis=1)
        for kept in (2, 1, 0):
            ok = rules[:, :kept].all(axis=1)
            if ok.any():
                break
        picks.append(int(np.flatnonzero(ok)[np.argmax(scores[ok])]))
    return picks


MARGIN = 0.5  # the chosen answers should beat each real continuation's mean by half a scale unit: valid sets are small


def objective(data: FitData, w: np.ndarray, k: int | None = None, margin: float = MARGIN) -> tuple[float, dict]:
    """The fit's objective for weights `w` (candidates: the first `k` of each call's), and its parts."""
    picks = chosen(data, w, k)
    sel = np.array([m[i] for m, i in zip(data.measures, picks)])
    ll = float(np.mean([t[i, TERMS.index("log_likelihood")] for t, i in zip(data.terms, picks)]))
    names = np.array(data.sets)
    score, per_set = 0.0, {}
    for name in sorted(set(data.sets)):
        rows = names == name
        gaps = {m: BETTER[m] * (sel[rows, j].mean() - data.real[rows, j].mean()) / SCALES[m]
                for j, m in enumerate(MEASURES)}
        score += sum(min(g - margin, 0.0) + 0.1 * float(np.clip(g, -1, 1)) for g in gaps.values())
        per_set[name] = {m: round(g, 3) for m, g in gaps.items()}
    score = score / len(per_set) + ll
    return score, {"gaps": per_set, "log_likelihood": round(ll, 4),
                   "chosen": {m: round(float(sel[:, j].mean()), 4) for j, m in enumerate(MEASURES)},
                   "real": {m: round(float(data.real[:, j].mean()), 4) for j, m in enumerate(MEASURES)}}


# held, not fitted: the log-likelihood sets the scale; an echo of the call is not an answer, and silence is
# never one, whatever the valid calls' own continuations do (folk and fiddle tunes often repeat their
# first bars note for note)
FIXED = {"log_likelihood": 1.0, "echo": 1.0, "silent": 10.0}


def fit(data: FitData, start: dict[str, float] | None = None, rounds: int = 4, k: int | None = None,
        margin: float = MARGIN) -> dict:
    """Coordinate ascent over the weights not in FIXED."""
    w = np.array([FIXED.get(t, (start or DEFAULT_WEIGHTS).get(t, 0.0)) for t in TERMS], dtype=float)
    best, info = objective(data, w, k, margin)
    start_score = best
    for _ in range(rounds):
        improved = False
        for j in range(len(TERMS)):
            if TERMS[j] in FIXED:
                continue
            base = w[j] if w[j] > 0 else 0.5
            for step in STEPS:
                trial = w.copy()
                trial[j] = base * step
                score, trial_info = objective(data, trial, k, margin)
                if score > best + 1e-9:
                    best, info, w, improved = score, trial_info, trial, True
        if not improved:
            break
    return {"weights": {t: round(float(x), 4) for t, x in zip(TERMS, w)}, "objective": round(best, 4),
            "objective_at_start": round(start_score, 4), **info}


def write_critic(style_path, result: dict, out=None, meta_extra: dict | None = None) -> None:
    """Stores the fitted weights (and how they were fitted) in a style file's metadata under "critic"."""
    from pathlib import Path

    from antiphon.engine.atomic import atomic_write_bytes
    from antiphon.engine.style import pack, resolve_style, unpack

    path = resolve_style(str(style_path))
    tensors, meta = unpack(path.read_bytes(), str(path))
    meta["critic"] = {"weights": result["weights"],
                      "fit": {k: result[k] for k in ("objective", "objective_at_start", "gaps", "chosen", "real",
                                                     "log_likelihood")} | (meta_extra or {})}
    atomic_write_bytes(Path(out) if out else path, pack(tensors, meta))
