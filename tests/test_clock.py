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


# ---- the real world: lost ticks, absurd tempi, Song Position Pointer, ordinals -------------------------
def _started(bpm: float = 120.0, n: int = 48, t0: float = 1.0, stamps: bool = False):
    """A follower after Start and `n` ticks at `bpm`; with `stamps`, the I/O layer's ordinals fed along."""
    c = ClockFollower()
    T = period(bpm)
    c.feed(START, b"", t0, **({"ordinal": 0, "epoch": 1} if stamps else {}))
    times = [t0 + 0.005 + i * T for i in range(n)]
    for i, t in enumerate(times):
        c.feed(CLOCK, b"", t, **({"ordinal": i + 1, "epoch": 1} if stamps else {}))
    return c, times, T


def test_a_missing_tick_is_counted_and_the_position_moves_on():
    c, times, T = _started()
    assert c.lost_ticks == 0 and c.tick_at(times[-1]) == pytest.approx(47, abs=0.05)
    c.feed(CLOCK, b"", times[-1] + 2 * T)  # tick 48 never arrives: 49 comes two periods after 47
    assert c.lost_ticks == 1
    assert c.tick_at(times[-1] + 2 * T) == pytest.approx(49, abs=0.05)
    assert abs(c.bpm - 120) < 0.2  # the loop heard the missing tick where it was due
    for k in range(1, 24):
        c.feed(CLOCK, b"", times[-1] + (2 + k) * T)
    assert c.lost_ticks == 1 and abs(c.bpm - 120) < 0.2
    snap = c.snapshot(times[-1] + 25 * T)
    assert snap.ticks == 48 + 24 and snap.lost_ticks == 1


def test_the_ordinal_map_follows_the_master_across_a_lost_tick():
    """Stamped by an I/O layer that counts what never arrived: tick 48 lost, 49 is its 50th 0xF8 (the first
    after Start, song tick 0, was its 1st); song tick 80 is its 81st before and after."""
    c, times, T = _started(stamps=True)
    assert c.ordinal_of(80) == (1, 81)
    c.feed(CLOCK, b"", times[-1] + 2 * T, ordinal=50, epoch=1)
    assert c.lost_ticks == 1 and c.tick_at(times[-1] + 2 * T) == pytest.approx(49, abs=0.05)
    assert c.ordinal_of(80) == (1, 81)


def test_two_or_three_missing_ticks():
    c, times, T = _started()
    c.feed(CLOCK, b"", times[-1] + 3 * T)
    assert c.lost_ticks == 2 and c.tick_at(times[-1] + 3 * T) == pytest.approx(50, abs=0.05)
    c.feed(CLOCK, b"", times[-1] + 4 * T)
    c.feed(CLOCK, b"", times[-1] + 8 * T)
    assert c.lost_ticks == 5


def test_a_late_stamp_is_not_a_lost_tick():
    """A long interval followed by a short one: the tick between was stamped late (a late cycle)."""
    c, times, T = _started()
    c.feed(CLOCK, b"", times[-1] + 1.7 * T)  # late by 0.7 periods
    c.feed(CLOCK, b"", times[-1] + 2.0 * T)
    assert c.lost_ticks == 0
    assert c.tick_at(times[-1] + 2.0 * T) == pytest.approx(49, abs=0.05)


def test_the_io_layers_count_decides_where_it_stamps_ordinals():
    """An I/O layer that counts 0xF8s in sample frames stamps each with its ordinal: the follower follows it
    (a late time stamp, even a long one, is no loss; a jump in the count is), and takes back what it takes back."""
    c = ClockFollower()
    T = period(120)
    c.feed(START, b"", 1.0, ordinal=0, epoch=1)
    for i in range(30):
        c.feed(CLOCK, b"", 1.0 + i * T, ordinal=i + 1, epoch=1)
    # stamped 1.8 periods after the last (a late cycle) but counted as the next one
    c.feed(CLOCK, b"", 1.0 + 29 * T + 1.8 * T, ordinal=31, epoch=1)
    assert c.lost_ticks == 0 and c.ordinal_of(40) == (1, 41)
    # a jump in the count: the layer saw a gap of two periods in frames
    c.feed(CLOCK, b"", 1.0 + 32 * T, ordinal=33, epoch=1)
    assert c.lost_ticks == 1 and c.tick_at(1.0 + 32 * T) == pytest.approx(32, abs=0.1)
    assert c.ordinal_of(40) == (1, 41)  # its count includes the lost one: song tick + 1, as ever
    # the layer took its count back (the tempo dropped): its ordinal steps back to the same number, and the
    # follower with it (song tick 40 is its 41st 0xF8 again, as before the gap)
    c.feed(CLOCK, b"", 1.0 + 34 * T, ordinal=33, epoch=1)
    assert c.lost_ticks == 0 and c.ordinal_of(40) == (1, 41)


def test_the_follower_says_where_0xf8s_never_arrived_in_frames():
    """With frames stamped, each jump in the I/O layer's count is kept as the span of frames it fell in (so that
    another client's recording can tell whether the master sent it); a count taken back takes its span back.
    A Stop keeps the frames: what it releases is placed by frame after the last 0xF8."""
    c = ClockFollower()
    T, F = period(120), 1000  # 1000 frames a tick
    c.feed(START, b"", 1.0, ordinal=0, epoch=1, frame=0)
    for i in range(30):
        c.feed(CLOCK, b"", 1.0 + i * T, ordinal=i + 1, epoch=1, frame=(i + 1) * F)
    c.feed(CLOCK, b"", 1.0 + 31 * T, ordinal=32, epoch=1, frame=32 * F)  # the 31st never came
    assert c.lost_where() == [(30 * F, 32 * F, 1)]
    c.feed(CLOCK, b"", 1.0 + 35 * T, ordinal=36, epoch=1, frame=36 * F)
    assert c.lost_where() == [(30 * F, 32 * F, 1), (32 * F, 36 * F, 3)] and c.lost_ticks == 4
    c.feed(CLOCK, b"", 1.0 + 36 * T, ordinal=36, epoch=1, frame=37 * F)  # the layer took one back
    assert c.lost_where() == [(30 * F, 32 * F, 1), (32 * F, 36 * F, 2)] and c.lost_ticks == 3
    c.feed(CLOCK, b"", 1.0 + 37 * T, ordinal=37, epoch=1, frame=38 * F)
    tick = c.tick_of(37)
    c.feed(STOP, b"", 1.0 + 37.5 * T, ordinal=37, epoch=2, frame=38 * F + 400)
    assert c.tick_for(1.0 + 37.5 * T, 37, frame=38 * F + 400) == pytest.approx(tick + 0.4)
    # right after a 0xF8 that followed a lost one: the fraction is of the master's interval, not of the gap
    assert c.tick_for(1.0 + 32.5 * T, 32, frame=32 * F + 400) == pytest.approx(c.tick_of(32) + 0.4)


def test_tick_counters_count_what_never_arrived():
    """The python-rtmidi layer's count (the native client does the same in frames, tested on JACK)."""
    from antiphon.plugin.polled_io import TickCounter

    T = period(120)
    k = TickCounter()
    for i in range(20):
        k.tick(1.0 + i * T)
    assert (k.ordinal, k.lost) == (20, 0)
    k.tick(1.0 + 21 * T)  # 20 never came: a late callback or a lost 0xF8, the next one tells
    assert (k.ordinal, k.lost) == (21, 0)
    k.tick(1.0 + 22 * T)  # on time: 20 was lost
    assert (k.ordinal, k.lost) == (23, 1)
    k.tick(1.0 + 22 * T + 1.1 * T)  # jitter, no loss
    assert (k.ordinal, k.lost) == (24, 1)
    t = 1.0 + 22 * T + 1.1 * T
    k.tick(t + 2 * T)  # two ticks lost in a row (a starved server): both counted
    k.tick(t + 3 * T)
    k.tick(t + 5 * T)
    k.tick(t + 6 * T)
    assert (k.ordinal, k.lost) == (30, 3)
    t += 6 * T
    for n in range(1, 4):  # the tempo halves: nothing counted lost while it is not told from losses...
        k.tick(t + 2 * n * T)
    assert (k.ordinal, k.lost) == (33, 3)
    k.tick(t + 8 * T)  # ...and at the fourth long interval in a row it is a tempo (34 received, 3 lost)
    assert (k.ordinal, k.lost) == (34, 3)
    for n in range(1, 6):
        k.tick(t + (8 + 2 * n) * T)
    assert (k.ordinal, k.lost) == (39, 3)
    t += 18 * T
    k.tick(t + 2 * 1.7 * T)  # late by 0.7 of the (new) period: not counted ahead...
    assert (k.ordinal, k.lost) == (40, 3)
    k.tick(t + 2 * 2 * T)  # ...the next on time: nothing was lost, and nothing went out a tick early
    assert (k.ordinal, k.lost) == (41, 3)


def test_the_tempo_halving_is_not_lost_ticks():
    c, times, T = _started()
    t = times[-1]
    for k in range(1, 30):
        c.feed(CLOCK, b"", t + k * 2 * T)
    assert c.lost_ticks == 0
    assert c.tick_at(t + 29 * 2 * T) == pytest.approx(47 + 29, abs=0.05)
    assert abs(c.bpm - 60) < 0.5


def test_tempo_is_clamped_to_20_400_bpm():
    c = ClockFollower()
    feed_ticks(c, [1.0 + i * 0.0016 for i in range(200)])  # 0xF8 1.6 ms apart: 1562 BPM as read naively
    assert c.bpm == pytest.approx(400.0)
    slow = ClockFollower()
    feed_ticks(slow, [1.0 + i * 0.2 for i in range(3)])  # 12.5 BPM (within the 0.25 s silence rule)
    assert slow.bpm == pytest.approx(20.0)


def test_song_position_pointer_while_rolling_reanchors_and_relocates():
    c, times, T = _started()
    relocations = c.relocations
    t = times[-1] + T / 2
    c.feed(SONG_POSITION, bytes([32, 0]), t, ordinal=48, epoch=2)  # 32 sixteenths = tick 192
    assert c.relocations == relocations + 1
    assert c.tick_at(t + T / 4) == 192  # waiting for the 0xF8 that *is* 192
    assert c.ordinal_of(192) == (2, 49) and c.ordinal_of(200) == (2, 57)
    c.feed(CLOCK, b"", times[-1] + T, ordinal=49, epoch=2)
    c.feed(CLOCK, b"", times[-1] + 2 * T, ordinal=50, epoch=2)
    assert c.tick_at(times[-1] + 2 * T) == pytest.approx(193, abs=0.05)
    assert c.ordinal_of(200) == (2, 57)


def test_ordinals_after_start_and_continue():
    c = ClockFollower()
    T = period(100)
    assert c.ordinal_of(0) is None  # no MIDI clock yet
    c.feed(START, b"", 1.0, ordinal=7, epoch=3)  # seven 0xF8 before Start (clock while stopped)
    assert c.ordinal_of(0) == (3, 8) and c.ordinal_of(24) == (3, 32)
    for i in range(10):
        c.feed(CLOCK, b"", 1.01 + i * T, ordinal=8 + i, epoch=3)
    assert c.ordinal_of(24) == (3, 32)
    c.feed(STOP, b"", 1.01 + 9.5 * T, ordinal=17, epoch=4)
    assert c.ordinal_of(24) is None  # stopped: nothing waits for a tick
    c.feed(SONG_POSITION, bytes([8, 0]), 1.5, ordinal=17, epoch=5)  # tick 48
    c.feed(CONTINUE, b"", 1.6, ordinal=17, epoch=6)
    assert c.ordinal_of(48) == (6, 18) and c.ordinal_of(60) == (6, 30)


def test_a_message_is_placed_by_the_count_of_ticks_before_it():
    """A note that came just after 0xF8 number N sits in N's tick even when the time map's phase strays."""
    c, times, T = _started(stamps=True)
    t = times[-1] + 0.1 * T
    assert c.tick_for(t, ordinal=48, epoch=1) == pytest.approx(47.1, abs=0.01)
    late = times[-1] + 1.3 * T  # the time map would say 48.3: the 48th 0xF8 was the last one counted
    assert c.tick_for(late, ordinal=48, epoch=1) == pytest.approx(47.99)
    assert c.tick_for(t, ordinal=48, epoch=0) == pytest.approx(c.tick_at(t))  # another transport run: the map
    assert c.tick_for(t) == pytest.approx(c.tick_at(t))


def test_where_frames_are_stamped_a_message_is_placed_in_its_tick_by_them():
    """The fraction of a tick comes from the sample frames where the I/O layer stamps them: a note sent on its
    tick's 0xF8 (same frame) is on that tick even when its time stamp (the wall clock of a starved server)
    would put it most of a tick later, and a note a quarter of the way to the next 0xF8 is at .25."""
    c = ClockFollower()
    T, frames_per_tick = period(120.0), 500
    c.feed(START, b"", 1.0, ordinal=0, epoch=1, frame=0)
    for i in range(48):
        c.feed(CLOCK, b"", 1.005 + i * T, ordinal=i + 1, epoch=1, frame=1000 + i * frames_per_tick)
    on_tick = 1000 + 40 * frames_per_tick  # 0xF8 number 41: song tick 40
    stray = 1.005 + 40.8 * T
    assert c.tick_for(stray, ordinal=41, epoch=1) == pytest.approx(40.8, abs=0.01)  # the map alone
    assert c.tick_for(stray, ordinal=41, epoch=1, frame=on_tick) == pytest.approx(40.0)
    assert c.tick_for(stray, ordinal=41, epoch=1, frame=on_tick + 125) == pytest.approx(40.25)
    last = 1000 + 47 * frames_per_tick  # the last one: no next 0xF8 yet, the interval before it
    assert c.tick_for(1.005 + 47.1 * T, ordinal=48, epoch=1, frame=last + 250) == pytest.approx(47.5)
    c.feed(START, b"", 2.0, ordinal=48, epoch=2, frame=last + 600)  # a new run: the old frames are gone
    c.feed(CLOCK, b"", 2.005, ordinal=49, epoch=2, frame=last + 700)
    assert c.tick_for(2.005 + 0.3 * T, ordinal=49, epoch=2, frame=last + 800) == pytest.approx(0.3, abs=0.01)
