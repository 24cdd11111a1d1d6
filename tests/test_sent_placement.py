"""Where the recording puts what went out on Antiphon Out, from the I/O layer's log of what it wrote: with the
0xF8 it was queued for, with a later one (its own never arrived), or at once between two (by sample frame)."""
from __future__ import annotations

import pytest

from antiphon.engine.recorder import Recorder
from antiphon.plugin.clock import CLOCK, START, STOP
from tests.reliability import make_engine

F = 1000  # frames a tick


def engine_on_the_clock(ticks: int = 40):
    """A LiveEngine (ports not opened) whose follower heard Start and `ticks` 0xF8s, stamped as the native
    client stamps them: ordinal k at frame k * F, 120 BPM."""
    engine = make_engine(bpm=120.0)
    period = 60.0 / (120.0 * 24)
    engine.clock.feed(START, b"", 1.0, ordinal=0, epoch=1, frame=0)
    for k in range(1, ticks + 1):
        engine.clock.feed(CLOCK, b"", 1.0 + k * period, ordinal=k, epoch=1, frame=k * F)
    engine.recorder = Recorder(engine.meter, 120.0)
    return engine, period


def placed(engine) -> list[tuple[float, bytes]]:
    engine.recorder._drain()
    # 480 a quarter: 20 a clock tick; the recording's own channel for the answer track
    return [(t / 20.0, bytes([m[0] & 0xF0]) + m[1:]) for t, m in engine.recorder._events["antiphon"]]


def test_a_note_goes_where_it_went_out():
    engine, period = engine_on_the_clock()
    song = engine.clock.tick_of(30)  # the 30th 0xF8 is song tick 29 (Start's first 0xF8 is tick 0)
    on_time = engine._new_tag(song + 1, by_tick=True)
    lost = engine._new_tag(song + 2, by_tick=True)  # its 0xF8 never came: it went out with the next one
    t = 1.0 + 33 * period
    engine._on_sent([
        (t, bytes([0x90, 60, 90]), on_time, 31, False, 31 * F),
        (t, bytes([0x90, 62, 90]), lost, 33, True, 33 * F),
        (t, bytes([0x80, 60, 0]), 0, 33, True, 33 * F + 400),  # a release at once, 0.4 of a tick after it
    ])
    assert placed(engine) == [(song + 1, bytes([0x90, 60, 90])), (song + 3, bytes([0x90, 62, 90])),
                              (song + 3.4, bytes([0x80, 60, 0]))]
    # the note whose 0xF8 never came went out a tick after its own: counted, with how late
    assert (engine.after_their_tick, engine.after_their_tick_ons) == (1, 1)
    assert engine.after_their_tick_worst_ms == pytest.approx(period * 1e3, rel=1e-3)
    assert [f for f, _ in engine.after_their_tick_ons_at] == [33 * F]


def test_what_a_stop_releases_is_placed_by_frame():
    engine, period = engine_on_the_clock()
    song = engine.clock.tick_of(40)
    engine.clock.feed(STOP, b"", 1.0 + 40.3 * period, ordinal=40, epoch=2, frame=40 * F + 300)
    engine._on_sent([(1.0 + 40.3 * period, bytes([0x80, 64, 0]), 0, 40, True, 40 * F + 300)])
    assert placed(engine) == [(song + 0.3, bytes([0x80, 64, 0]))]
