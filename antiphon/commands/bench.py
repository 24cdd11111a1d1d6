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

Each part measures itself (antiphon.engine.step_bench, antiphon.plugin.sender_bench,
antiphon.training.throughput); this command assembles the report.
"""
from __future__ import annotations

import argparse
import json
import os


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--style", default="default", help="style name or file to measure")
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.add_argument("--quick", action="store_true", help="fewer repetitions (for tests)")
    p.add_argument("--skip", nargs="*", default=[], choices=["sender", "train", "prepare"],
                   help="leave out these measurements (default: none)")
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

    style = load_style(args.style)
    result: dict = {"style": style.name, "model": style.config.to_dict(), "machine": platform.machine(),
                    "cpus": os.cpu_count(), "torch": torch.__version__}
    limits = one_thread()
    try:
        result.update(bench_step(style, args.quick))
        result.update(bench_generation(style, 1.0 if args.quick else 3.0))
        if "sender" not in args.skip:
            result.update(bench_sender_under_load(style, 1.0 if args.quick else 4.0, args.sender))
    finally:
        limits.restore_original_limits()
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
