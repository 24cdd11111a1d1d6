"""Measuring the engine's realtime path: the per-event step against its memory-bandwidth floor, torch's
nn.LSTM and a window re-run, and sustained generation. Medians of many calls on one thread; `antiphon
bench` reports them (speed goals live there, never in timed unit tests)."""
from __future__ import annotations

import statistics
import threading
import time

import numpy as np


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

    from .runtime import StepRuntime

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
    from .generator import Generator
    from .sampler import SamplingParams

    gen = Generator(style.runtime(), seed=0)
    params = SamplingParams(temperature=1.0, top_p=0.95)
    stop = threading.Event()
    counter = [0]
    timer = threading.Timer(seconds, stop.set)
    timer.start()
    t0 = time.perf_counter()
    generate_flat_out(gen, params, stop, counter)
    return {"events_per_s": round(counter[0] / (time.perf_counter() - t0), 1)}
