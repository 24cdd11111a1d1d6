"""Fitting the critic's weights on valid calls, so that the answers it plays are distributed like the real
continuations of the same calls.

For every valid call (training/calls.py) the live session plans K candidates, as it would play. Each
candidate is described by the critic's own terms (engine/critic.py; its realism term is the discriminator's
log-odds, engine/discriminator.py), and so is the piece's own continuation. The critic plays a candidate
drawn with chance softmax(w . terms): an exponential tilt of the style's own samples. The weights are the
tilt under which the expected played terms equal the real continuations' mean terms (`fit`: a convex
problem, solved by Newton's method). With every weight 0 the critic plays the model's own sample, as K = 1
does; staying nearer the call than real music does is corrected as much as straying further. `objective`
reports what is left, per call set, over the terms and the discriminator's features:

    objective = - mean over sets and descriptors of ((played mean - real mean) / real spread)^2

Test calls are never used here.
"""
from __future__ import annotations

import time
from dataclasses import dataclass, replace

import numpy as np

from antiphon.engine.critic import (TERMS, Call, Constraints, kept_pool, passes, realism_terms, selection_chances,
                                    term_matrix, terms)
from antiphon.engine.discriminator import FEATURES, Discriminator, features
from antiphon.engine.session import SessionParams

from .answer_bench import answer
from .calls import held_out_calls

# what is matched: every term but the model's likelihood (unknown for the real continuation) and the
# silence flag, and every discriminator feature
MATCHED_TERMS = tuple(t for t in TERMS if t not in ("log_likelihood", "silent"))
DESCRIPTORS = MATCHED_TERMS + tuple(f"f:{f}" for f in FEATURES)
# the model's likelihood is left as it is (its samples follow it already; the real continuation's is unknown);
# a silent candidate is never drawn while another plays
TILT_FIXED = {"log_likelihood": 0.0, "silent": 10.0}
MIN_SPREAD = 0.05  # a term that hardly varies among candidates is standardised no finer than this
L2 = 0.02  # on standardised terms: a real mean no candidate can reach costs a bounded weight, not an endless one
MAX_WEIGHT = 1000.0  # what a style file may hold (engine.critic.weights_from)


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


def chances(data: FitData, w: np.ndarray, k: int | None = None, choice: str = "sample") -> list[np.ndarray]:
    """Per call, each of its first `k` candidates' chance of being played, as engine.critic.choose gives it:
    among those keeping the rules (dropped one at a time when none keeps them all), softmax of the scores
    ("sample") or all on the best ("best")."""
    out = []
    for t, rules in zip(data.terms, data.rules):
        pool = kept_pool(rules[:k], _playing(t[:k]))
        p = np.zeros(len(t[:k]))
        p[pool] = selection_chances(t[:k][pool] @ w, choice)
        out.append(p)
    return out


def objective(data: FitData, w: np.ndarray, k: int | None = None, choice: str = "sample") -> tuple[float, dict]:
    """How far the played answers' descriptors lie from the real continuations' for weights `w`
    (candidates: the first `k` of each call's), and its parts: - mean over sets and descriptors of
    ((expected played mean - real mean) / real spread)^2."""
    probs = chances(data, w, k, choice)
    sel = np.array([p @ d[:len(p)] for d, p in zip(data.described, probs)])
    names = np.array(data.sets)
    spread = np.maximum(data.real.std(axis=0), 1e-3)
    score, per_set = 0.0, {}
    for name in sorted(set(data.sets)):
        rows = names == name
        z = (sel[rows].mean(axis=0) - data.real[rows].mean(axis=0)) / spread
        score -= float(np.mean(z ** 2))
        per_set[name] = {d: round(float(v), 3) for d, v in zip(DESCRIPTORS, z) if abs(v) >= 0.25}
    score /= max(len(per_set), 1)
    ll = float(np.mean([p @ t[:len(p), TERMS.index("log_likelihood")] for t, p in zip(data.terms, probs)]))
    return score, {"gaps": per_set, "log_likelihood": round(ll, 4)}


def fit(data: FitData, k: int | None = None, l2: float = L2, iterations: int = 50,
        discriminator: Discriminator | None = None) -> dict:
    """The exponential tilt of the style's own candidates that matches the real continuations' mean terms:
    weights w (on the terms not in TILT_FIXED) minimising, over the calls (each call set weighed alike),

        mean( log sum_k exp(w . t_k) - w . t_real ) + l2 / 2 |w|^2     (terms standardised)

    whose gradient is the gap between the expected played terms (candidates drawn with chance softmax(w . t))
    and the real ones. It is convex: Newton's method finds the one minimum. With w = 0 the critic plays the
    model's own sample (K = 1); every weight moves the played answers towards the real ones, on either side.

    With the style's `discriminator`, its features are tilted too: what the tilt adds to them is folded into
    the discriminator's coefficients (returned as "discriminator", with the realism weight then 1), so the
    realism term stays one explainable number and every feature's mean is matched as well."""
    free = [j for j, t in enumerate(TERMS) if t not in TILT_FIXED]
    fixed = np.array([TILT_FIXED.get(t, 0.0) for t in TERMS])
    columns = [DESCRIPTORS.index(TERMS[j]) for j in free]
    names = [TERMS[j] for j in free]
    if discriminator is not None:
        columns += [DESCRIPTORS.index(f"f:{f}") for f in FEATURES]
        names += [f"f:{f}" for f in FEATURES]
    center = np.zeros(len(columns))
    spread = np.ones(len(columns))
    if discriminator is not None:  # the features as the discriminator reads them
        center[len(free):], spread[len(free):] = discriminator.mean, discriminator.scale
    real = (data.real[:, columns] - center) / spread
    pools = []
    for t, d, rules in zip(data.terms, data.described, data.rules):
        pool = kept_pool(rules[:k], _playing(t[:k]))
        pools.append(((d[:k][pool][:, columns] - center) / spread, t[:k][pool] @ fixed))
    # a column is standardised by how much it varies among one call's candidates (all a tilt can use); one
    # that never varies there cannot be tilted, and keeps weight 0
    deviations = np.vstack([f - f.mean(axis=0) for f, _ in pools])
    within = np.sqrt((deviations ** 2).sum(axis=0) / max(len(deviations) - len(pools), 1))
    tilted = within > 1e-6
    stacked = np.vstack([f for f, _ in pools])[:, tilted]
    mean, scale = stacked.mean(axis=0), np.maximum(within[tilted], MIN_SPREAD)
    pools = [((f[:, tilted] - mean) / scale, b) for f, b in pools]
    target = (real[:, tilted] - mean) / scale
    sizes = {name: data.sets.count(name) for name in set(data.sets)}
    weight = np.array([1.0 / (sizes[name] * len(sizes)) for name in data.sets])  # each call set counts alike
    v = _newton(pools, target, weight, l2, iterations)
    raw = np.zeros(len(columns))
    raw[tilted] = v / scale
    w = fixed.copy()
    w[free] = raw[:len(free)]
    out = {}
    if discriminator is not None:
        realism = TERMS.index("realism")
        coef = w[realism] * discriminator.coef + raw[len(free):]
        out["discriminator"] = Discriminator(discriminator.mean, discriminator.scale, coef,
                                             w[realism] * discriminator.bias)
        w[realism] = 1.0
    w = np.clip(w, -MAX_WEIGHT, MAX_WEIGHT)
    zero = fixed.copy()
    at_start = objective(data, zero, k)[0]
    score, info = objective(_retilted(data, out.get("discriminator"), discriminator), w, k)
    return {"weights": {t: round(float(x), 4) for t, x in zip(TERMS, w)}, "choice": "sample",
            "objective": round(score, 4), "objective_at_start": round(at_start, 4),
            "tilted": [n for n, ok in zip(names, tilted) if ok], **info, **out}


def _playing(terms: np.ndarray) -> np.ndarray:
    return terms[:, TERMS.index("silent")] == 0.0


def _newton(pools, target, weight, l2: float, iterations: int) -> np.ndarray:
    """The tilt's standardised weights: Newton's method with a backtracking line search on its convex loss."""
    n = target.shape[1]

    def loss_grad_hess(v):
        loss, grad, hess = 0.0, np.zeros(n), np.zeros((n, n))
        for (f, b), r, c in zip(pools, target, weight):
            s = f @ v + b
            top = s.max()
            p = np.exp(s - top)
            z = p.sum()
            p /= z
            loss += c * (top + np.log(z) - r @ v)
            e = p @ f
            grad += c * (e - r)
            hess += c * ((f * p[:, None]).T @ f - np.outer(e, e))
        return loss + 0.5 * l2 * v @ v, grad + l2 * v, hess + l2 * np.eye(n)

    v = np.zeros(n)
    loss, grad, hess = loss_grad_hess(v)
    for _ in range(iterations):
        step = np.linalg.solve(hess, grad)
        t = 1.0
        while t > 1e-4:
            trial = v - t * step
            trial_loss, trial_grad, trial_hess = loss_grad_hess(trial)
            if trial_loss <= loss - 1e-4 * t * grad @ step:
                break
            t /= 2
        else:
            break
        v, loss, grad, hess = trial, trial_loss, trial_grad, trial_hess
        if np.abs(grad).max() < 1e-7:
            break
    return v


def _retilted(data: FitData, tilted: Discriminator | None, original: Discriminator | None) -> FitData:
    """The fit data with the realism term read by the tilted discriminator (its features are in `described`)."""
    if tilted is None or original is None:
        return data
    realism = TERMS.index("realism")
    f = [DESCRIPTORS.index(f"f:{name}") for name in FEATURES]
    terms = []
    for t, d in zip(data.terms, data.described):
        t = t.copy()
        t[:, realism] = tilted.log_odds(d[:, f])
        terms.append(t)
    return replace(data, terms=terms)


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
    if result is not None and result.get("discriminator") is not None:  # the tilt folded into its coefficients
        fitted = dict((critic.get("discriminator") or {}).get("fit") or {})
        critic["discriminator"] = result["discriminator"].to_meta() | {"fit": fitted | {"tilted_on": "valid"}}
    if result is not None:
        critic["weights"] = result["weights"]
        critic["choice"] = result["choice"]
        critic["fit"] = {k: result[k] for k in ("objective", "objective_at_start", "gaps", "log_likelihood")} \
            | (meta_extra or {})
    meta["critic"] = critic
    atomic_write_bytes(Path(out) if out else path, pack(tensors, meta))
