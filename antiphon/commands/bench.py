"""`antiphon bench --json`: the figures the performance goals are judged by, in one run on one style.

step_us                         our per-event step (engine.runtime), median, 1 thread
floor_us                        the style's weight bytes / matrix-vector bandwidth measured now
nn_lstm_step_us                 torch nn.LSTM with the same weights, called once per event
window_rerun_us                 re-running a 100-event window per event (the course-project way)
events_per_s                    sustained generation: step + grammar mask + sampling
sender_jitter_ms_p99_under_load the sender's lateness at p99 while the engine generates flat out
train_tokens_per_s              training throughput of the style's model config
prepare_files_per_s             MIDI files read + tokenised per second by `prepare`'s reader
music21_files_per_s             the same files parsed by music21 (as the seed pipelines did)
plan_ms                         planning K candidate answers of 2 bars and choosing one (p50/p99)
batch_step_us_per_stream        the batched step (K streams) per stream, against its bandwidth floor
style_switch_ms                 a new style hearing the last 256 tokens (one forward pass per model)
answers (--answers)             held-out calls answered on fake time, measured against their real
                                continuations (training/answer_bench.py)
accompany (--accompany)         held-out melodies accompanied, consonance and coverage against the
                                music's own parts (training/accompany_bench.py)
accompany_latency (--jack RUNS) on a private JACK server, the player's note-on to the band's first note-on
                                of the same clock tick, p50/p99 over the runs (antiphon/accompany_latency.py)

Each part measures itself (antiphon.engine.step_bench, antiphon.plugin.sender_bench,
antiphon.training.throughput); this command assembles the report.
"""
from __future__ import annotations

import argparse
import dataclasses
import json
import os
import sys

from antiphon import arguments
from antiphon.arguments import int_in


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--style", default="default", help="style name or file to measure")
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.add_argument("--quick", action="store_true", help="fewer repetitions (for tests)")
    p.add_argument("--skip", nargs="*", default=[], choices=["sender", "train", "prepare", "plan"],
                   help="leave out these measurements (default: none)")
    p.add_argument("--answers", action="store_true",
                   help="also run the answer benchmark: held-out calls against their real continuations")
    p.add_argument("--accompany", action="store_true",
                   help="also run the accompaniment benchmark: held-out melodies, consonance and coverage")
    p.add_argument("--jack", type=int_in(1, 50), metavar="RUNS", default=None,
                   help="also measure the accompaniment's latency on real JACK ports: RUNS jams on a private "
                        "server (needs jackd2 and jack-midi-clock)")
    p.add_argument("--split", default="test", choices=["valid", "test"],
                   help="held-out split the answer and accompaniment benchmarks use (choose on valid)")
    p.add_argument("--seeds", type=int_in(1, 20), default=3, help="answers per call in those benchmarks")
    p.add_argument("--calls", nargs="+", default=["bach", "folk", "fiddle"], metavar="SET",
                   help="with --answers: the call sets (bach, folk, fiddle, or DATA: your own music's split)")
    p.add_argument("--candidates", type=int_in(1, 1024), default=None,
                   help="K for planning and the benchmarks (default: the session's)")
    p.add_argument("--temperature", type=arguments.temperature, default=None,
                   help="sampling temperature for the answer benchmark (default: the session's)")
    p.add_argument("--top-p", type=arguments.top_p, default=None, help="top-p for the answer benchmark")
    p.add_argument("--kinship", type=arguments.float_in(0.0, 4.0), default=None,
                   help="how far planned candidates lean towards the call's pitch classes (default: the session's)")
    p.add_argument("--register", choices=["follow", "free"], default=None,
                   help="the register rule for planned answers (default: the session's)")
    p.add_argument("--polyphony", choices=["call", "free"], default=None,
                   help="the most notes an answer sounds at once: its call's, or the cap (default: the session's)")
    p.add_argument("--picture", metavar="PNG",
                   help="with --answers: a piano roll of one held-out call, its real continuation, a K=1 answer "
                        "and the planned answer")
    p.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda"],
                   help="where the planner's batched step runs (auto: CUDA when present)")
    p.add_argument("--sender", default="process", choices=["process", "thread"],
                   help="which sender to measure under load (the live engine uses the process sender)")


def one_thread():
    import torch
    from threadpoolctl import threadpool_limits

    torch.set_num_threads(1)
    return threadpool_limits(1)


def run(args) -> int:
    import platform

    import torch

    from antiphon.engine.step_bench import bench_generation, bench_step
    from antiphon.engine.style import load_style
    from antiphon.plugin.sender_bench import bench_sender_under_load
    from antiphon.training.throughput import bench_prepare, bench_train

    from antiphon.engine.session import SessionParams
    from antiphon.engine.step_bench import bench_batch_step, bench_plan, bench_style_switch, matvec_bandwidth
    from antiphon.engine.torch_step import pick_device

    style = load_style(args.style)
    device = pick_device(args.device)
    chosen = {"candidates": args.candidates, "temperature": args.temperature, "top_p": args.top_p,
              "kinship": args.kinship, "register": args.register, "polyphony": args.polyphony}
    params = SessionParams(**{k: v for k, v in chosen.items() if v is not None}).validated()
    result: dict = {"style": style.name, "model": style.config.to_dict(), "machine": platform.machine(),
                    "cpus": os.cpu_count(), "torch": torch.__version__, "device": str(device),
                    "gpu": torch.cuda.get_device_name(0) if device.type == "cuda" else None}
    limits = one_thread()
    try:
        result.update(bench_step(style, args.quick))
        result.update(bench_generation(style, 1.0 if args.quick else 3.0))
        if "plan" not in args.skip:
            k = params.candidates
            result.update(bench_plan(style, k, args.quick, device=device))
            result.update(bench_batch_step(style, k, matvec_bandwidth(), args.quick, device=device))
            result.update(bench_style_switch(style, args.quick))
        if "sender" not in args.skip:
            result.update(bench_sender_under_load(style, 1.0 if args.quick else 4.0, args.sender))
        if args.answers:
            from antiphon.training.answer_bench import answer_benchmark

            result["answers"] = answer_benchmark(style, args.split, args.seeds, params=params,
                                                 limit=4 if args.quick else None, sets=args.calls,
                                                 log=lambda line: print(line, file=sys.stderr))
            if args.picture:
                result["answers"]["picture"] = answers_picture(style, args.picture, params, args.split)
        if args.accompany:
            from antiphon.training.accompany_bench import accompany_benchmark

            result["accompany"] = accompany_benchmark(style, args.split, args.seeds, params=params,
                                                      chorales=3 if args.quick else 16, tunes=3 if args.quick else 40)
    finally:
        limits.restore_original_limits()
    if args.jack:  # a tool missing here: one line (the rig says which Debian package has it), exit 1
        from antiphon.accompany_latency import measure

        result["accompany_latency"] = measure(args.jack)
    if "train" not in args.skip:
        result.update(bench_train(style, args.quick))
    if "prepare" not in args.skip:
        result.update(bench_prepare(args.quick))
    s = result["step_us"]
    result["ratios"] = {"step_over_floor": round(s / result["floor_us"], 2),
                        "nn_lstm_over_step": round(result["nn_lstm_step_us"] / s, 1),
                        "window_rerun_over_step": round(result["window_rerun_us"] / s, 1)}
    if args.json:
        print(json.dumps(result))
    else:
        for k, v in result.items():
            print(f"{k:>38}: {v}")
    return 0


def answers_picture(style, path: str, params, split: str = "test", index: int = 0, seed: int = 0) -> dict:
    """One held-out chorale call as piano rolls: the call, its real continuation, Antiphon's answer with one
    candidate (K=1) and the planned answer (K candidates, the critic's choice)."""
    from antiphon.pictures import piano_rolls_png
    from antiphon.training.answer_bench import answer
    from antiphon.training.calls import held_out_calls

    held = held_out_calls("bach", split, continuation_bars=params.response_bars, limit=index + 1)[index]
    runtime = style.runtime()
    one, _ = answer(runtime, held, dataclasses.replace(params, candidates=1), seed)
    planned, session = answer(runtime, held, params, seed)
    end = max(n.end for n in held.call)
    parts = [("the call", held.call, "#2a6fdb"), ("its real\ncontinuation", held.continuation, "#7a7a7a"),
             ("K=1", one, "#c9a227"), (f"K={params.candidates},\nthe critic's\nchoice", planned, "#e0692b")]
    piano_rolls_png(path, parts, held.meter, f"{held.name} (held out): a call, how Bach goes on, and two answers")
    return {"call": held.name, "call_ends_tick": end, "choice": session.last_choice.explain()
            if session.last_choice else None}
