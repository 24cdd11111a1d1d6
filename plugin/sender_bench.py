"""Measuring the timed sender: its lateness while the model generates flat out beside it."""
from __future__ import annotations

import threading
import time

from antiphon.engine.generator import Generator
from antiphon.engine.step_bench import generate_flat_out
from antiphon.engine.sampler import SamplingParams


def bench_sender_under_load(style, seconds: float, kind: str) -> dict:
    """Schedules a note every 5 ms for `seconds` while another thread generates flat out."""
    from .sender import TimedSender
    from .sender_process import IOProcess

    sender = IOProcess(None) if kind == "process" else TimedSender(lambda msg: None)
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
