"""Fitting the critic's weights on valid calls, so that the answers it chooses are distributed like the
real continuations of the same calls.

For every valid call (training/calls.py) the live session plans K candidates, as it would play. Each
candidate is described by the critic's own terms and its discriminator's features (engine/critic.py,
engine/discriminator.py: the critic's description, not the answer benchmark's), and so is the piece's own
continuation. The weights are chosen so that, per call set, the mean of every one of those descriptors over
the chosen candidates lies as near as it can to the real continuations' mean, on either side:

    objective = - mean over sets and descriptors of ((chosen mean - real mean) / real spread)^2

Staying nearer the call than real music does costs as much as straying further. The log-likelihood's
weight is held at 1 (it sets the scale), silence is held as a penalty; the rest may take either sign (an
echo of the call too: real tunes repeat their opening bars). The search is coordinate descent over a grid,
on standardised terms. Test calls are never used here.
"""
from __future__ import annotations

import time
from dataclasses import dataclass, replace

import numpy as np

from antiphon.engine.critic import (DEFAULT_WEIGHTS, TERMS, Call, Constraints, passes, realism_terms, term_matrix,
                                    terms)
from antiphon.engine.discriminator import FEATURES, features
from antiphon.engine.session import SessionParams

from .answer_bench import answer
from .calls import held_out_calls

# what is matched: every term but the model's likelihood (unknown for the real continuation) and the
# silence flag, and every discriminator feature
MATCHED_TERMS = tuple(t for t in TERMS if t not in ("log_likelihood", "silent"))
DESCRIPTORS = MATCHED_TERMS + tuple(f"f:{f}" for f in FEATURES)
FIXED = {"log_likelihood": 1.0, "silent": 10.0}
MIN_SPREAD = 0.05  # a term that hardly varies among candidates gets no weight grid finer than this allows
GRID = (-4.0, -2.0, -1.0, -0.5, -0.25, 0.0, 0.25, 0.5, 1.0, 2.0, 4.0, 8.0)


@dataclass
class FitData:
    terms: list[np.ndarray]  # per call: (K, len(TERMS))
    described: list[np.ndarray]  # per call: (K, len(DESCRIPTORS))
    rules: list[np.ndarray]  # per call: (K, 4) the constraints each candidate meets (critic.passes)
    real: np.ndarray  # (calls, len(DESCRIPTORS)): the real continuations'
    sets: list[str]  # per call: its call set (each set must match its own real continuations)


def describe(call: Call, notes: list, term_row: np.ndarray, start: int, span: int) -> np.ndarray:
    x = features(call._summary, notes, call.meter, start, span)
    return np.concatenate([[term_row[TERMS.index(t)] for t in MATCHED_TERMS], x])


def collect(style, sets=("bach", "folk", "fiddle"), split: str = "valid", k: int = 32, seeds: int = 1,
            params: SessionParams = SessionParams(), limit: int | None = None, log=None) -> FitData:
    runtime = style.runtime()
    disc = getattr(runtime, "critic_discriminator", None)
    params = replace(params, candidates=k)
    constraints = Constraints(params.end_on, params.register, params.key_lock)
    data = FitData([], [], [], np.zeros((0, len(DESCRIPTORS))), [])
    real_rows = []
    t0 = time.perf_counter()
    for name in sets:
        calls = held_out_calls(name, split, continuation_bars=params.response_bars, limit=limit)
        for held in calls:
            bar = held.meter.ticks_per_bar
            span = params.response_bars * bar
            call = Call(held.call, held.meter)
            real_start = held.continuation_start
            r = realism_terms(call, [held.continuation], real_start, span, disc)[0]
            real_terms = terms(call, held.continuation, 0.0, span, realism=float(r))
            real_row = describe(call, held.continuation, np.array([real_terms[t] for t in TERMS]), real_start, span)
            for seed in range(seeds):
                _, session = answer(runtime, held, params, seed)
                if not session.last_candidates:
                    continue
                start = session.answer_window[0]
                cands = [(c.notes, c.per_token) for c in session.last_candidates]
                t = term_matrix(session.last_call, cands, span, disc, start)
                data.terms.append(t)
                data.described.append(np.array([describe(session.last_call, n, row, start, span)
                                                for (n, _), row in zip(cands, t)]))
                data.rules.append(np.array([passes(session.last_call, n, constraints) for n, _ in cands]))
                real_rows.append(real_row)
                data.sets.append(name)
        if log:
            log(f"{name}: {len(calls)} {split} calls collected, {time.perf_counter() - t0:.0f} s")
    data.real = np.array(real_rows).reshape(-1, len(DESCRIPTORS))
    return data


def chosen(data: FitData, w: np.ndarray, k: int | None = None) -> list[int]:
    """The candidate the critic plays for each call: as engine.critic.choose, the best score among those
    keeping the rules (dropped one at a time, the least important first, when none keeps them all)."""
    picks = []
    for t, rules in zip(data.terms, data.rules):
        scores = t[:k] @ w
        for kept in (4, 3, 2, 1, 0):
            ok = rules[:k, :kept].all(axis=1)
            if ok.any():
                break
        picks.append(int(np.flatnonzero(ok)[np.argmax(scores[ok])]))
    return picks


def objective(data: FitData, w: np.ndarray, k: int | None = None) -> tuple[float, dict]:
    """The fit's objective for weights `w` (candidates: the first `k` of each call's), and its parts."""
    picks = chosen(data, w, k)
    sel = np.array([d[i] for d, i in zip(data.described, picks)])
    names = np.array(data.sets)
    spread = np.maximum(data.real.std(axis=0), 1e-3)
    score, per_set = 0.0, {}
    for name in sorted(set(data.sets)):
        rows = names == name
        z = (sel[rows].mean(axis=0) - data.real[rows].mean(axis=0)) / spread
        score -= float(np.mean(z ** 2))
        per_set[name] = {d: round(float(v), 3) for d, v in zip(DESCRIPTORS, z) if abs(v) >= 0.25}
    score /= max(len(per_set), 1)
    ll = float(np.mean([t[i, TERMS.index("log_likelihood")] for t, i in zip(data.terms, picks)]))
    return score, {"gaps": per_set, "log_likelihood": round(ll, 4)}


def fit(data: FitData, start: dict[str, float] | None = None, rounds: int = 4, k: int | None = None) -> dict:
    """Coordinate descent over the weights not in FIXED, each on a grid of multiples of 1 / its spread."""
    spread = np.vstack(data.terms).std(axis=0)
    unit = np.where(spread > 1e-9, 1.0 / np.maximum(spread, MIN_SPREAD), 0.0)
    w = np.array([FIXED.get(t, (start or DEFAULT_WEIGHTS).get(t, 0.0)) for t in TERMS], dtype=float)
    best, info = objective(data, w, k)
    at_start = best
    for _ in range(rounds):
        improved = False
        for j, name in enumerate(TERMS):
            if name in FIXED or unit[j] == 0:
                continue
            for g in GRID:
                trial = w.copy()
                trial[j] = g * unit[j]
                score, trial_info = objective(data, trial, k)
                if score > best + 1e-9:
                    best, info, w, improved = score, trial_info, trial, True
        if not improved:
            break
    return {"weights": {t: round(float(x), 4) for t, x in zip(TERMS, w)}, "objective": round(best, 4),
            "objective_at_start": round(at_start, 4), **info}


def write_critic(style_path, result: dict | None, out=None, meta_extra: dict | None = None,
                 discriminator: dict | None = None) -> None:
    """Stores the fitted weights (and how they were fitted) and the discriminator in a style file's metadata
    under "critic"."""
    from pathlib import Path

    from antiphon.engine.atomic import atomic_write_bytes
    from antiphon.engine.style import pack, resolve_style, unpack

    path = resolve_style(str(style_path))
    tensors, meta = unpack(path.read_bytes(), str(path))
    critic = dict(meta.get("critic") or {})
    if discriminator is not None:
        critic["discriminator"] = discriminator
    if result is not None:
        critic["weights"] = result["weights"]
        critic["fit"] = {k: result[k] for k in ("objective", "objective_at_start", "gaps", "log_likelihood")} \
            | (meta_extra or {})
    meta["critic"] = critic
    atomic_write_bytes(Path(out) if out else path, pack(tensors, meta))
