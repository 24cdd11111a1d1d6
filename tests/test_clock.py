"""ClockFollower with fake time: tempo lock, tempo changes, jitter, transport, silence, the tick map."""
from __future__ import annotations

import random

import pytest

from antiphon.engine.events import Meter
from antiphon.plugin.clock import CLOCK, CONTINUE, SONG_POSITION, START, STOP, ClockFollower


def period(bpm: float) -> float:
    return 60.0 / (bpm * 24)


def ticks(bpm: float, n: int, t0: float = 10.0, jitter: float = 0.0, seed: int = 0) -> list[float]:
    rng = random.Random(seed)
    T = period(bpm)
    return [t0 + i * T + (rng.uniform(-jitter, jitter) * T if jitter else 0.0) for i in range(n)]


def feed_ticks(c: ClockFollower, times) -> list[float]:
    out = []
    for t in times:
        c.feed(CLOCK, b"", t)
        out.append(c.bpm)
    return out


@pytest.mark.parametrize("bpm", [60.0, 97.3, 120.0, 174.0])
def test_steady_tempo_after_one_beat(bpm):
    c = ClockFollower(internal_bpm=100)
    times = ticks(bpm, 25)
    feed_ticks(c, times)
    assert c.source == "midi"
    assert abs(c.bpm - bpm) < 0.1
    assert c.poll(times[-1])


def test_tempo_change_followed_within_one_beat():
    c = ClockFollower()
    first = ticks(120, 48)
    second = [first[-1] + (i + 1) * period(140) for i in range(24)]
    feed_ticks(c, first)
    assert abs(c.bpm - 120) < 0.1
    feed_ticks(c, second)
    assert abs(c.bpm - 140) < 0.5
    assert c.resets == 1
    # and back down
    third = [second[-1] + (i + 1) * period(100) for i in range(24)]
    feed_ticks(c, third)
    assert abs(c.bpm - 100) < 0.5


def test_small_tempo_change_followed_by_the_loop():
    c = ClockFollower()
    first = ticks(120, 48)
    second = [first[-1] + (i + 1) * period(123) for i in range(96)]
    feed_ticks(c, first + second)
    assert abs(c.bpm - 123) < 0.2
    assert c.resets == 0


@pytest.mark.parametrize("seed", range(10))
def test_jitter_ten_percent(seed):
    c = ClockFollower()
    bpms = feed_ticks(c, ticks(120, 24 * 16, jitter=0.10, seed=seed))
    assert max(abs(b - 120) for b in bpms[48:]) < 0.5
    assert c.resets == 0


def test_start_stop_continue_and_song_position():
    c = ClockFollower()
    T = period(120)
    c.feed(START, b"", 1.0)
    assert c.poll(1.0) and c.source == "midi"
    assert c.tick_at(1.001) == 0.0  # nothing moves before the first tick
    times = [1.01 + i * T for i in range(48)]
    feed_ticks(c, times)
    # the first tick after Start is position 0, so the 48th is 47
    assert c.tick_at(times[-1]) == pytest.approx(47.0, abs=0.05)
    snap = c.snapshot(times[-1] + T, Meter(4, 4))
    assert snap.bar == 1 and snap.beat == 3 and snap.locked
    c.feed(STOP, b"", times[-1] + 0.5 * T)
    assert not c.poll(times[-1] + T)
    stopped_at = c.tick_at(times[-1] + 5.0)
    assert 47.0 <= stopped_at <= 48.0
    # clock while stopped keeps tempo, not position
    more = [times[-1] + (i + 1) * T for i in range(10)]
    feed_ticks(c, more)
    assert c.tick_at(more[-1]) == stopped_at
    assert not c.poll(more[-1])
    # Continue: the next tick is the following position
    c.feed(CONTINUE, b"", more[-1] + 0.001)
    c.feed(CLOCK, b"", more[-1] + T)
    assert c.poll(more[-1] + T)
    assert c.tick_at(more[-1] + T) == pytest.approx(round(stopped_at), abs=0.05)
    # Song Position Pointer (16ths) while stopped, then Continue
    c.feed(STOP, b"", more[-1] + 1.5 * T)
    c.feed(SONG_POSITION, bytes([0x10, 0x01]), more[-1] + 2 * T)  # 16 + 128 = 144 sixteenths
    assert c.tick_at(more[-1] + 3 * T) == 144 * 6
    c.feed(CONTINUE, b"", more[-1] + 4 * T)
    c.feed(CLOCK, b"", more[-1] + 5 * T)
    c.feed(CLOCK, b"", more[-1] + 6 * T)
    assert c.tick_at(more[-1] + 6 * T) == pytest.approx(144 * 6 + 1, abs=0.05)
    snap = c.snapshot(more[-1] + 6 * T, Meter(4, 4))
    assert snap.bar == 144 * 6 // 96 + 1 and snap.beat == 1
    # Start goes back to zero
    c.feed(START, b"", more[-1] + 7 * T)
    c.feed(CLOCK, b"", more[-1] + 8 * T)
    assert c.tick_at(more[-1] + 8 * T) == pytest.approx(0.0, abs=0.05)


def test_short_song_position_is_counted_not_raised():
    c = ClockFollower()
    c.feed(SONG_POSITION, b"\x01", 1.0)
    assert c.malformed == 1


def test_silence_means_stopped():
    c = ClockFollower(silence_s=0.25)
    times = ticks(120, 30, t0=1.0)
    feed_ticks(c, times)
    assert c.poll(times[-1] + 0.2)
    assert not c.poll(times[-1] + 0.3)
    frozen = c.tick_at(times[-1] + 0.3)
    assert frozen <= 30.0 and c.tick_at(times[-1] + 2.0) == frozen
    snap = c.snapshot(times[-1] + 0.3)
    assert not snap.running and not snap.locked and snap.source == "midi"
    # ticks resume: running again, continuing the count, tempo kept
    resume = [times[-1] + 1.0 + i * period(120) for i in range(3)]
    feed_ticks(c, resume)
    assert c.poll(resume[-1]) and abs(c.bpm - 120) < 0.1
    assert c.tick_at(resume[-1]) == pytest.approx(29 + 3, abs=0.05)


def test_internal_clock_then_midi_takes_over():
    c = ClockFollower(internal_bpm=90)
    assert not c.poll(5.0) and c.source == "internal"
    c.start(t=5.0)
    assert c.poll(6.0)
    assert c.tick_at(5.0 + 60 / 90) == pytest.approx(24.0)
    c.set_bpm(180, t=5.0 + 60 / 90)
    assert c.tick_at(5.0 + 60 / 90 + 60 / 180) == pytest.approx(48.0)
    assert c.snapshot(6.0).locked is False
    c.stop(t=7.0)
    assert not c.poll(7.5)
    c.feed(START, b"", 8.0)
    feed_ticks(c, ticks(130, 30, t0=8.01))
    assert c.source == "midi" and abs(c.bpm - 130) < 0.1
    c.start(t=8.6)  # MIDI clock rules while it runs
    assert c.source == "midi"


@pytest.mark.parametrize("jitter", [0.0, 0.1])
def test_time_of_and_tick_at_are_inverse(jitter):
    c = ClockFollower()
    times = ticks(133, 60, t0=3.0, jitter=jitter, seed=4)
    feed_ticks(c, times)
    for tick in (0.0, 30.5, 59.0, 59.7, 61.0, 64.25):
        assert c.tick_at(c.time_of(tick)) == pytest.approx(tick, abs=1e-6)
    for t in (times[-1], times[-1] + 0.01, times[-1] + 0.015):
        assert c.time_of(c.tick_at(t)) == pytest.approx(t, abs=1e-9)
    c2 = ClockFollower(internal_bpm=100)
    c2.start(t=0.0)
    assert c2.time_of(c2.tick_at(1.234)) == pytest.approx(1.234)


def test_feed_from_threads_while_reading():
    import threading

    c = ClockFollower()
    times = ticks(120, 2000, t0=0.0)
    stop = threading.Event()

    def reader():
        while not stop.is_set():
            s = c.snapshot(times[-1])
            assert s.bpm > 0

    th = threading.Thread(target=reader)
    th.start()
    feed_ticks(c, times)
    stop.set()
    th.join()
    assert abs(c.bpm - 120) < 0.1
