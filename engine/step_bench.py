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


def listened_generator(style, seed: int = 0):
    """A generator that has heard a session's worth of music (chorales, one after another, until every
    memory window is full), then a 4-bar call, and stands at the start of the answer: the state planning
    meets live. Returns (generator, the call's notes, the answer's first tick)."""
    from .events import Meter, Note
    from .generator import Generator
    from .reading import corpus_phrase, corpus_score, score_notes
    from .tokens import encode_notes, shift_tokens

    meter = Meter(4, 4)
    gen = Generator(style.runtime(), meter, seed=seed)
    windows = [m.memory.window for m in style.members if m.memory] or [style.memory.window if style.memory else 0]
    pieces = ["bach/bwv7.7", "bach/bwv10.7", "bach/bwv26.6", "bach/bwv40.8", "bach/bwv57.8", "bach/bwv64.2",
              "bach/bwv65.2", "bach/bwv67.7", "bach/bwv70.7"]

    def play(notes):
        """`notes` (from tick 0) from the next bar line on; returns that bar line."""
        origin = (gen.grammar.tick // meter.ticks_per_bar + 1) * meter.ticks_per_bar
        for token in shift_tokens(origin - gen.grammar.tick):
            gen.feed(token)
        for token in encode_notes(notes, meter)[0][1:]:  # relative to the bar line: its shifts start there
            gen.feed(int(token))
        return origin

    i = 0
    while gen.tokens < max(windows) + 64 and i < len(pieces):
        play(score_notes(corpus_score(pieces[i]))[0])
        i += 1
    call, _ = corpus_phrase("bach/bwv66.6", 0, 4)
    origin = play(call)
    call = [Note(n.start + origin, n.end + origin, n.pitch, n.velocity) for n in call]
    start = -(-(max(n.end for n in call) + meter.ticks_per_beat) // meter.ticks_per_beat) * meter.ticks_per_beat
    for token in shift_tokens(start - gen.grammar.tick):
        gen.feed(token)
    return gen, call, start


def memory_key_bytes(style) -> int:
    """Bytes of session-memory keys one step reads when every window is full."""
    members = style.members or []
    configs = [m.memory for m in members] if members else [style.memory]
    return sum(c.window * style.config.hidden * 4 for c in configs if c is not None)


def bench_batch_step(style, k: int, bandwidth: float, quick: bool, device=None) -> dict:
    """One batched step of K streams from the listened state, against the bandwidth floor of what it reads
    (every member's weights and memory keys, once for all K)."""
    from .torch_step import planning_stepper

    gen, _, _ = listened_generator(style)
    runtime = planning_stepper(gen.runtime, device)
    batch = runtime.fork(gen.state, k)
    rng = np.random.default_rng(0)
    positions = np.zeros(k, dtype=np.int64)

    def step():
        runtime.step_batch(rng.integers(1, 300, k), positions, batch)

    us = median_us(step, 60 if quick else 300, warm=5)
    read = runtime.weight_bytes + memory_key_bytes(style)
    floor = read / bandwidth * 1e6
    flops = k * step_flops(style)
    return {"batch_k": k, "batch_step_us": round(us, 1), "batch_step_us_per_stream": round(us / k, 1),
            "batch_floor_us_per_stream": round(floor / k, 1), "batch_bytes_read": read,
            "batch_step_over_floor": round(us / floor, 2), "batch_flops_per_stream": step_flops(style),
            "batch_gflop_per_s": round(flops / us / 1e3, 1)}


def step_flops(style) -> int:
    """Multiply-adds x 2 one stream's step costs: every member's layers, head and interval head, and its
    memory's window of keys (at this size the batched step is bound by these, not by the bytes read)."""
    from .model import INTERVAL_SPAN

    total = 0
    members = style.members or []
    for m in (members or [None]):
        model, memory = (m.model, m.memory) if m is not None else (style.model, style.memory)
        c = model.config
        total += 2 * c.hidden * 4 * c.hidden + (c.layers - 1) * 2 * 2 * c.hidden * 4 * c.hidden
        total += 2 * c.hidden * c.vocab_size
        if c.interval_head:
            rows = 4 if c.interval_roles else 2
            total += 2 * c.hidden * rows * 2 * INTERVAL_SPAN + 2 * rows * 2 * INTERVAL_SPAN * 128
        if memory is not None:
            total += 2 * memory.window * c.hidden
    return total


def bench_plan(style, k: int, quick: bool, bars: int = 2, device=None) -> dict:
    """Planning K candidates of a `bars`-bar answer from the listened state and letting the critic choose,
    as the session does at a phrase's end: fork, plan, choose. Wall time per plan."""
    from .critic import DEFAULT_WEIGHTS, Call, choose
    from .planner import Planner
    from .torch_step import planning_stepper
    from .sampler import SamplingParams
    from .session import SessionParams

    gen, call_notes, start = listened_generator(style)
    p = SessionParams()
    params = SamplingParams(temperature=p.temperature, top_p=p.top_p, low=p.low, high=p.high)
    span = bars * gen.meter.ticks_per_bar
    call = Call(call_notes, gen.meter)
    weights = getattr(gen.runtime, "critic_weights", None) or DEFAULT_WEIGHTS
    stepper = planning_stepper(gen.runtime, device)
    times, tokens = [], []
    for seed in range(8 if quick else 40):
        t0 = time.perf_counter()
        fork = gen.fork(seed=seed)
        planner = Planner(fork, k, start + span, params, fork.sampler.rng, max_polyphony=p.max_polyphony,
                          max_note_ticks=int(p.max_note_beats * gen.meter.ticks_per_beat), stepper=stepper)
        planner.run()
        candidates = planner.candidates()
        choose(call, [(c.notes, c.per_token) for c in candidates], span, weights,
               discriminator=getattr(gen.runtime, "critic_discriminator", None), start=start,
               choice=getattr(gen.runtime, "critic_choice", "best"), rng=fork.sampler.rng)
        times.append((time.perf_counter() - t0) * 1000)
        tokens.append(planner.steps)
    return {"plan_ms": {"k": k, "bars": bars, "p50": round(float(np.percentile(times, 50)), 2),
                        "p99": round(float(np.percentile(times, 99)), 2), "max": round(max(times), 2),
                        "plans": len(times), "steps_p50": int(np.median(tokens))}}


def bench_style_switch(style, quick: bool) -> dict:
    """A style switch mid-session: the new style hears the last 256 tokens of the stream (Session's replay,
    one forward pass per model) — against stepping them through it one by one, as it used to."""
    from .tokens import BOS

    gen, _, _ = listened_generator(style)
    runtime = gen.runtime
    history = [BOS] + list(np.random.default_rng(0).integers(1, 300, 256))  # any 256 tokens cost the same
    positions = [i % 96 for i in range(len(history))]
    replay_ms = median_us(lambda: runtime.replay(history, positions), 3 if quick else 10, warm=1) / 1000

    def stepwise():
        state = runtime.initial_state()
        for tok, pos in zip(history, positions):
            runtime.step(int(tok), pos, state)

    stepwise_ms = median_us(stepwise, 1 if quick else 3, warm=0) / 1000
    return {"style_switch_ms": round(replay_ms, 1), "style_switch_stepwise_ms": round(stepwise_ms, 1),
            "style_switch_tokens": len(history) - 1}
