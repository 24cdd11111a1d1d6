"""The answer benchmark: held-out real calls answered by the live session on fake time, every answer
measured against its call beside the piece's own continuation measured the same way (training/realism.py).

For each call set (training/calls.py) and each configuration (Antiphon sampling one answer as it plays,
`k1`; Antiphon as shipped, K planned candidates and the critic, `shipped`):

* every measure two-sided: its mean against the real continuations' 95 % bootstrap interval, and the
  Wasserstein distance between the distributions;
* the two-sample test: how well a cross-validated classifier tells the answers from the real
  continuations, beside the same test on two halves of the real ones (`realism`);
* how long planning took.
"""
from __future__ import annotations

import time
from dataclasses import replace

import numpy as np

from antiphon.engine.answer_measures import key_of_notes
from antiphon.engine.fake_time import simulate
from antiphon.engine.session import Session, SessionParams

from . import realism
from .calls import HeldOutCall, held_out_calls

CONFIGS = ("k1", "shipped")


def answer(runtime, held: HeldOutCall, params: SessionParams, seed: int) -> tuple[list, Session]:
    """The session's answer to the whole call, as it would sound (what it may have begun during a rest
    inside the call is not part of it)."""
    session = Session(runtime, held.meter, params, seed=seed)
    call_end = max(n.end for n in held.call)
    until = call_end + (params.response_bars + 2) * held.meter.ticks_per_bar
    return [n for n in simulate(session, held.call, until) if n.start >= call_end], session


def real_row(held: HeldOutCall, bars: int) -> np.ndarray:
    """The measures of the piece's own continuation (it starts on the bar after the call's last)."""
    start = held.continuation_start
    return realism.measures(held.call, held.continuation, held.meter, bars * held.meter.ticks_per_bar, start)


def answer_span(held: HeldOutCall, session: Session) -> tuple[int, int]:
    """(first tick, end tick) of the session's answer to `held`; never answered: the span it would have had."""
    start, end = session.answer_window
    if end <= start:
        start = max(n.end for n in held.call)
        end = start + session.params.response_bars * held.meter.ticks_per_bar
    return start, end


def answer_row(held: HeldOutCall, notes: list, session: Session) -> np.ndarray:
    start, end = answer_span(held, session)
    return realism.measures(held.call, [n for n in notes if n.start < end], held.meter, end - start, start,
                            key_of_notes(held.call))


def run_config(runtime, calls: list[HeldOutCall], params: SessionParams, seeds: int) -> tuple[np.ndarray, list, int]:
    """(rows of measures, planning times in ms, calls answered)."""
    rows, plan_ms, answered = [], [], 0
    for held in calls:
        for seed in range(seeds):
            notes, session = answer(runtime, held, params, seed)
            rows.append(answer_row(held, notes, session))
            answered += bool(notes)
            if session.last_choice is not None:
                plan_ms.append(session.last_plan_ms)
    return np.array(rows), plan_ms, answered


def percentile(values: list[float], q: float) -> float:
    return round(float(np.percentile(values, q)), 2) if values else 0.0


def judged(rows: np.ndarray, real: np.ndarray, seed: int = 0) -> dict:
    """One configuration's answers against the real continuations: the two-sample test and every measure."""
    compared = realism.compare(rows, real, seed)
    return {"realism": realism.two_sample(rows, real, seed), "within": sum(m["within"] for m in compared.values()),
            "outside": [m for m, v in compared.items() if not v["within"]], "measures": compared}


def answer_benchmark(style, split: str = "test", seeds: int = 3, sets=("bach", "folk", "fiddle"),
                     params: SessionParams = SessionParams(), limit: int | None = None, log=None) -> dict:
    """{"sets": {name: {"calls", "realism": {"accuracy", "real_vs_real", "k1"}, "k1": {...}, "shipped": {...}}},
    "plan_ms": {...}}."""
    runtime = style.runtime()
    out: dict = {"style": style.name, "split": split, "seeds": seeds, "candidates": params.candidates,
                 "response_bars": params.response_bars, "temperature": params.temperature, "top_p": params.top_p,
                 "kinship": params.kinship, "register": params.register, "measures": list(realism.MEASURES),
                 "sets": {}}
    plans: list[float] = []
    t0 = time.perf_counter()
    for name in sets:
        calls = held_out_calls(name, split, continuation_bars=params.response_bars, limit=limit)
        real = np.array([real_row(h, params.response_bars) for h in calls])
        entry: dict = {"calls": len(calls)}
        for config in CONFIGS:
            p = replace(params, candidates=1) if config == "k1" else params
            rows, plan_ms, answered = run_config(runtime, calls, p, seeds)
            entry[config] = judged(rows, real) | {"answered": answered, "answers": len(rows)}
            if config == "shipped":
                plans += plan_ms
        shipped, k1 = entry["shipped"]["realism"], entry["k1"]["realism"]
        entry["realism"] = {"accuracy": shipped["accuracy"], "real_vs_real": shipped["real_vs_real"],
                            "k1": k1["accuracy"]}
        out["sets"][name] = entry
        if log:
            log(f"{name}: {len(calls)} calls, two-sample accuracy {shipped['accuracy']:.3f} (K=1 "
                f"{k1['accuracy']:.3f}, real against real {shipped['real_vs_real']:.3f}), measures within the "
                f"real's interval {entry['shipped']['within']}/{len(realism.MEASURES)}, "
                f"{time.perf_counter() - t0:.0f} s")
    out["plan_ms"] = {"k": params.candidates, "p50": percentile(plans, 50), "p99": percentile(plans, 99),
                      "max": round(max(plans), 2) if plans else 0.0, "plans": len(plans)}
    out["seconds"] = round(time.perf_counter() - t0, 1)
    return out
