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

A benchmark tool, so it sits at the top: it reaches into engine/, plugin/ and training/.
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import tempfile
import threading
import time
from pathlib import Path

import numpy as np


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--style", default="default")
    p.add_argument("--json", action="store_true")
    p.add_argument("--quick", action="store_true", help="fewer repetitions (for tests)")
    p.add_argument("--skip", nargs="*", default=[], choices=["sender", "train", "prepare"],
                   help="leave out these measurements")
    p.add_argument("--sender", default="process", choices=["process", "thread"],
                   help="which sender to measure under load (the live engine uses the process sender)")


def one_thread():
    import torch
    from threadpoolctl import threadpool_limits

    torch.set_num_threads(1)
    return threadpool_limits(1)


def median_us(fn, n: int, warm: int = 20) -> float:
    for _ in range(warm):
        fn()
    samples = []
    for _ in range(n):
        t0 = time.perf_counter()
        fn()
        samples.append(time.perf_counter() - t0)
    return statistics.median(samples) * 1e6


def matvec_bandwidth(n: int = 4096, m: int = 4096, reps: int = 30) -> float:
    """Bytes per second that one float32 matrix-vector product streams (a matrix far bigger than cache)."""
    w = np.random.default_rng(0).standard_normal((n, m), dtype=np.float32)
    x = np.ones(m, dtype=np.float32)
    out = np.empty(n, dtype=np.float32)
    us = median_us(lambda: np.dot(w, x, out=out), reps, warm=3)
    return w.nbytes / (us * 1e-6)


def bench_step(style, quick: bool) -> dict:
    import torch

    from engine.runtime import StepRuntime

    model = style.model.eval()
    rt = StepRuntime(model)
    state = rt.initial_state()
    tokens = iter(np.random.default_rng(1).integers(1, 300, 10**7).tolist())
    n = 300 if quick else 3000
    lstm_us = median_us(lambda: rt.step(next(tokens), 0, state), n)
    step_us, memory = lstm_us, {}
    if style.memory is not None:  # the step the live engine runs, its memory's window full
        rt_mem = StepRuntime(model, style.memory)
        mem_state = rt_mem.initial_state()
        for _ in range(style.memory.window):
            rt_mem.step(next(tokens), 0, mem_state)
        step_us = median_us(lambda: rt_mem.step(next(tokens), 0, mem_state), n)
        memory = {"step_lstm_us": round(lstm_us, 1), "memory_window": style.memory.window}
    floor_rt = rt
    if style.is_ensemble:  # the live step runs every member (each memory's window full)
        floor_rt = style.runtime()
        ens_state = floor_rt.initial_state()
        for _ in range(max(m.memory.window if m.memory else 0 for m in style.members)):
            floor_rt.step(next(tokens), 0, ens_state)
        memory["step_first_member_us"] = round(step_us, 1)
        memory["members"] = len(style.members)  # transposed views included
        memory["models"] = len({id(m.model) for m in style.members})
        step_us = median_us(lambda: floor_rt.step(next(tokens), 0, ens_state), n)
    bw = matvec_bandwidth()
    torch_state = model.initial_state()

    t, p0 = torch.tensor([[5]]), torch.tensor([[0]])
    silence = torch.zeros(1, 1, 128, dtype=torch.bool)  # models that read pitches: nothing sounds

    def nn_step():
        nonlocal torch_state
        _, torch_state = model(t, p0, torch_state, silence, silence)

    with torch.inference_mode():
        nn_us = median_us(nn_step, n // 3)
        window = torch.randint(1, 300, (1, 100))
        pos = torch.zeros(1, 100, dtype=torch.long)
        rerun_us = median_us(lambda: model(window, pos), max(20, n // 30), warm=3)
    return {"step_us": round(step_us, 1), **memory, "floor_us": round(floor_rt.weight_bytes / bw * 1e6, 1),
            "matvec_gb_per_s": round(bw / 1e9, 2), "weight_bytes": floor_rt.weight_bytes,
            "nn_lstm_step_us": round(nn_us, 1), "window_rerun_us": round(rerun_us, 1)}


def generate_flat_out(gen, params, stop: threading.Event, counter: list) -> None:
    while not stop.is_set():
        gen.sample(params)
        counter[0] += 1
        if gen.grammar.tick > 10**6:
            gen.reset()


def bench_generation(style, seconds: float) -> dict:
    from engine.generator import Generator
    from engine.sampler import SamplingParams

    gen = Generator(style.runtime(), seed=0)
    params = SamplingParams(temperature=1.0, top_p=0.95)
    stop = threading.Event()
    counter = [0]
    timer = threading.Timer(seconds, stop.set)
    timer.start()
    t0 = time.perf_counter()
    generate_flat_out(gen, params, stop, counter)
    return {"events_per_s": round(counter[0] / (time.perf_counter() - t0), 1)}


def bench_sender_under_load(style, seconds: float, kind: str) -> dict:
    """Schedules a note every 5 ms for `seconds` while another thread generates flat out."""
    from engine.generator import Generator
    from engine.sampler import SamplingParams

    from .sender import TimedSender
    from .sender_process import ProcessSender

    sender = ProcessSender(None) if kind == "process" else TimedSender(lambda msg: None)
    gen = Generator(style.runtime(), seed=0)
    stop = threading.Event()
    counter = [0]
    worker = threading.Thread(target=generate_flat_out, args=(gen, SamplingParams(), stop, counter), daemon=True)
    worker.start()
    try:
        time.sleep(0.2)
        sender.reset_stats()
        start = time.perf_counter() + 0.05
        n = int(seconds / 0.005)
        for i in range(n):
            sender.schedule(start + i * 0.005, bytes([0x90, 60 + i % 12, 64 if i % 2 == 0 else 0]))
        time.sleep(seconds + 0.3)
        st = sender.stats()
    finally:
        stop.set()
        worker.join()
        sender.close()
    return {"sender_jitter_ms_p99_under_load": round(st.late_p99_ms, 3),
            "sender_jitter_ms_p50_under_load": round(st.late_p50_ms, 3),
            "sender_jitter_ms_max_under_load": round(st.late_worst_ms, 3),
            "sender_kind": kind, "generated_events_during_sender_test": counter[0]}


def bench_train(style, quick: bool) -> dict:
    import torch
    import torch.nn.functional as F

    from engine.model import EventLSTM

    torch.set_num_threads(os.cpu_count() or 1)  # training uses every core (the step figures use one)
    model = EventLSTM(style.config).train()
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3)
    x = torch.randint(1, 300, (32, 256))
    pos = torch.randint(0, 96, (32, 256))
    steps = 2 if quick else 5
    t0 = 0.0
    for i in range(steps + 1):
        if i == 1:
            t0 = time.perf_counter()
        logits, _ = model(x, pos)
        loss = F.cross_entropy(logits.reshape(-1, logits.shape[-1]), x.reshape(-1))
        opt.zero_grad()
        loss.backward()
        opt.step()
    return {"train_tokens_per_s": round(steps * x.numel() / (time.perf_counter() - t0), 1),
            "train_threads": torch.get_num_threads()}


def bench_prepare(quick: bool) -> dict:
    """Real chorales from the music21 corpus written as MIDI files, read by prepare's reader and by
    music21's parser."""
    from music21 import converter, corpus

    from engine.tokens import encode_notes
    from training.sources import read_midi

    names = ["bach/bwv66.6", "bach/bwv7.7", "bach/bwv10.7", "bach/bwv26.6", "bach/bwv40.8", "bach/bwv57.8"]
    names = names[:3] if quick else names
    with tempfile.TemporaryDirectory() as tmp:
        files = []
        for i, name in enumerate(names):
            path = Path(tmp) / f"{i}.mid"
            corpus.parse(name).write("midi", fp=str(path))
            files.append(path)
        reps = 5 if quick else 20
        t0 = time.perf_counter()
        for _ in range(reps):
            for f in files:
                notes, meter = read_midi(str(f))
                encode_notes(notes, meter)
        ours = reps * len(files) / (time.perf_counter() - t0)
        t0 = time.perf_counter()
        for f in files:
            converter.parse(str(f), forceSource=True)
        theirs = len(files) / (time.perf_counter() - t0)
    return {"prepare_files_per_s": round(ours, 1), "music21_files_per_s": round(theirs, 2),
            "prepare_speedup_vs_music21": round(ours / theirs, 1), "bench_files": len(files)}


def run(args) -> int:
    import platform

    import torch

    from engine.style import load_style

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
