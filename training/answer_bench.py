"""The answer benchmark: held-out real calls answered by the live session on fake time, every answer
measured against its call beside the piece's own continuation measured the same way.

For each call set (training/calls.py) and each configuration (the real continuation, Antiphon sampling one
answer as it plays, Antiphon as shipped: K planned candidates and the critic), the mean of each measure of
engine/answer_measures.py over calls and seeds, and how long planning took.
"""
from __future__ import annotations

import time
from dataclasses import asdict, replace

import numpy as np

from antiphon.engine.answer_measures import AnswerMeasures, measure
from antiphon.engine.fake_time import simulate
from antiphon.engine.session import Session, SessionParams

from .calls import HeldOutCall, held_out_calls

MEASURES = ("key_fit", "pitch_class_r", "onset_share", "register_distance", "loops", "ends_on_tonic_triad", "echo",
            "answered")
BETTER = {"key_fit": 1, "pitch_class_r": 1, "onset_share": 1, "register_distance": -1, "loops": -1,
          "ends_on_tonic_triad": 1, "echo": -1, "answered": 1}


def as_row(m: AnswerMeasures) -> dict[str, float]:
    d = asdict(m)
    from antiphon.engine.answer_measures import ECHO_NOTES

    return {"key_fit": d["key_fit"], "pitch_class_r": d["pitch_class_r"], "onset_share": d["onset_share"],
            "register_distance": d["register_distance"], "loops": float(d["loops"]),
            "ends_on_tonic_triad": float(d["ends_on_tonic_triad"]), "echo": float(d["echo_notes"] >= ECHO_NOTES),
            "answered": float(d["answered"])}


def means(rows: list[dict[str, float]]) -> dict[str, float]:
    return {k: round(float(np.mean([r[k] for r in rows])), 4) for k in MEASURES} if rows else {}


def answer(runtime, held: HeldOutCall, params: SessionParams, seed: int) -> tuple[list, Session]:
    """The session's answer to the whole call, as it would sound (what it may have begun during a rest
    inside the call is not part of it)."""
    session = Session(runtime, held.meter, params, seed=seed)
    call_end = max(n.end for n in held.call)
    until = call_end + (params.response_bars + 2) * held.meter.ticks_per_bar
    return [n for n in simulate(session, held.call, until) if n.start >= call_end], session


def run_config(runtime, calls: list[HeldOutCall], params: SessionParams, seeds: int) -> tuple[list[dict], list[float]]:
    rows, plan_ms = [], []
    for held in calls:
        for seed in range(seeds):
            notes, session = answer(runtime, held, params, seed)
            rows.append(as_row(measure(held.call, notes, held.meter)))
            if session.last_choice is not None:
                plan_ms.append(session.last_plan_ms)
    return rows, plan_ms


def percentile(values: list[float], q: float) -> float:
    return round(float(np.percentile(values, q)), 2) if values else 0.0


def answer_benchmark(style, split: str = "test", seeds: int = 3, sets=("bach", "folk", "fiddle"),
                     params: SessionParams = SessionParams(), limit: int | None = None, log=None) -> dict:
    """{"sets": {name: {"calls", "real", "k1", "shipped"}}, "overall": {...}, "plan_ms": {...}} (means)."""
    runtime = style.runtime()
    out: dict = {"style": style.name, "split": split, "seeds": seeds, "candidates": params.candidates,
                 "response_bars": params.response_bars, "sets": {}}
    all_rows: dict[str, list] = {"real": [], "k1": [], "shipped": []}
    plans: list[float] = []
    t0 = time.perf_counter()
    for name in sets:
        calls = held_out_calls(name, split, continuation_bars=params.response_bars, limit=limit)
        real = [as_row(measure(h.call, h.continuation, h.meter)) for h in calls]
        k1, _ = run_config(runtime, calls, replace(params, candidates=1), seeds)
        shipped, plan_ms = run_config(runtime, calls, params, seeds)
        out["sets"][name] = {"calls": len(calls), "real": means(real), "k1": means(k1), "shipped": means(shipped)}
        all_rows["real"] += real
        all_rows["k1"] += k1
        all_rows["shipped"] += shipped
        plans += plan_ms
        if log:
            log(f"{name}: {len(calls)} calls, {time.perf_counter() - t0:.0f} s")
    out["overall"] = {k: means(v) for k, v in all_rows.items()}
    out["plan_ms"] = {"k": params.candidates, "p50": percentile(plans, 50), "p99": percentile(plans, 99),
                      "max": round(max(plans), 2) if plans else 0.0, "plans": len(plans)}
    out["seconds"] = round(time.perf_counter() - t0, 1)
    return out


def verdict(result: dict) -> dict[str, dict[str, bool]]:
    """Per set, per measure: is Antiphon as shipped at least as good as the real continuation?"""
    return {name: {k: BETTER[k] * (r["shipped"][k] - r["real"][k]) >= -1e-9 for k in MEASURES}
            for name, r in result["sets"].items()}

