"""plugin.ports, ClockFollower and TimedSender on a real (private, dummy-driver) JACK server."""
from __future__ import annotations

import statistics
import threading
import time

import pytest

from antiphon.plugin import ports
from antiphon.plugin.clock import CLOCK, START, STOP, ClockFollower
from antiphon.plugin.sender import TimedSender

pytestmark = [pytest.mark.jack, pytest.mark.slow]


@pytest.fixture
def antiphon_ports(jack_server):
    events: list[tuple[bytes, float]] = []
    lock = threading.Lock()

    def on_message(data: bytes, t: float) -> None:
        with lock:
            events.append((data, t))

    inp = ports.open_input("jack", callback=on_message)
    out = ports.open_output("jack")
    try:
        yield inp, out, events
    finally:
        inp.close()
        out.close()


def test_auto_picks_jack_and_lists_virtual_ports(jack_server, antiphon_ports):
    inp, out, _ = antiphon_ports
    assert "jack" in ports.available_backends()
    assert inp.name == "Antiphon:Antiphon In" and inp.virtual
    assert out.name.endswith(":Antiphon Out") and out.name.startswith("Antiphon")
    names = jack_server.ports()
    assert inp.name in names and out.name in names
    listing = ports.list_ports(["jack"])["jack"]
    assert out.name in listing["inputs"] and inp.name in listing["outputs"]
    # feedback guard: our own ports are never matched by name
    with pytest.raises(ValueError, match="no jack MIDI input port matching 'Antiphon Out'"):
        ports.open_input("jack", name="Antiphon Out")
    with pytest.raises(ValueError, match="available"):
        ports.open_output("jack", name="no such synth")


def _clock_run(jack_server, antiphon_ports, bpm: float, jitter: float = 0.0, seconds: float = 3.0):
    inp, _, events = antiphon_ports
    follower = ClockFollower(internal_bpm=100)
    inp.callback = lambda data, t: (events.append((data, t)), follower.feed(data[0], data[1:], t))
    clock = jack_server.midi_clock(bpm, jitter)
    try:
        jack_server.connect(clock.port, inp.name)
        jack_server.transport("locate 0")
        time.sleep(0.2)  # let the relocation settle, or jack_midi_clock sends Continue instead of Start
        jack_server.transport("play")
        time.sleep(seconds)
        snap = follower.snapshot()
        jack_server.transport("stop")
        # jack_midi_clock sends Stop a cycle or more after jack_transport's: wait for it, not a fixed time
        deadline = time.monotonic() + 3.0
        while not any(d[0] == STOP for d, _ in list(events)) and time.monotonic() < deadline:
            time.sleep(0.02)
        time.sleep(0.05)
        stopped = follower.snapshot()
    finally:
        clock.stop()
    return follower, snap, stopped, list(events)


def _server_health(bpm: float, ticks: list[float]) -> tuple[bool, float, float]:
    """(healthy, arriving BPM, interval sd as a fraction of the period) for ticks after the first beat.

    The dummy driver's sample clock is not wall time: on a loaded box (--no-realtime) its cycles run
    long: at -p 64 we saw 35..47 ticks/s for a nominal 48 while other jobs ran (-p 256 kept up). Then there is no steady tempo
    to lock to, and the test says so (skip with the figures) instead of failing."""
    ts = ticks[24:]
    arriving = 60.0 / (24 * _slope(ts))
    intervals = [b - a for a, b in zip(ts, ts[1:])]
    sd = statistics.pstdev(intervals) / (60.0 / (24 * bpm))
    return abs(arriving / bpm - 1.0) < 0.01 and sd < 0.30, arriving, sd


@pytest.mark.parametrize("bpm", [120.0, 150.0])
def test_clock_from_jack_midi_clock_locks(jack_server, antiphon_ports, bpm):
    follower, snap, stopped, events = _clock_run(jack_server, antiphon_ports, bpm)
    statuses = [d[0] for d, _ in events]
    assert START in statuses and STOP in statuses[statuses.index(START):]
    start_at = events[statuses.index(START)][1]
    ticks = [t for d, t in events if d[0] == CLOCK and start_at < t <= snap.time]
    assert inp_malformed(antiphon_ports) == 0
    healthy, arriving, sd = _server_health(bpm, ticks)
    rate = (len(ticks) - 1) / (ticks[-1] - ticks[0])
    print(f"\njack_midi_clock -b {bpm:g}: {len(ticks)} ticks, {rate:.3f}/s (nominal {bpm * 24 / 60:.3f}); "
          f"arriving {arriving:.3f} BPM, interval sd {sd * 100:.1f}% of the period; follower {snap.bpm:.3f} BPM "
          f"locked={snap.locked} resets={follower.resets}")
    assert snap.source == "midi" and snap.running
    assert snap.tick == pytest.approx(len(ticks) - 1, abs=3)
    assert not stopped.running
    if not healthy:
        pytest.skip(f"JACK dummy server starved on this machine: arriving {arriving:.2f} BPM for nominal "
                    f"{bpm:g}, interval sd {sd * 100:.0f}% (follower said {snap.bpm:.2f})")
    assert snap.locked
    # the tempo as delivered (the server may run up to 1 % off). At -p 64 every tick lands on a 1.33 ms
    # period boundary: 8 % timing noise per tick at 150 BPM, which leaves the follower's instantaneous
    # tempo within ~1.5 BPM (measured 0.04-1.47); the fake-time unit tests hold 0.1 BPM on exact ticks
    assert abs(snap.bpm - arriving) < 2.5
    assert abs(snap.bpm - bpm) < 3.0


def _slope(ts: list[float]) -> float:
    n = len(ts)
    xm, ym = (n - 1) / 2, sum(ts) / n
    return sum((i - xm) * (t - ym) for i, t in enumerate(ts)) / sum((i - xm) ** 2 for i in range(n))


def inp_malformed(antiphon_ports) -> int:
    return antiphon_ports[0].malformed + antiphon_ports[0].callback_errors


def test_clock_with_jack_midi_clock_jitter(jack_server, antiphon_ports):
    follower, snap, _, events = _clock_run(jack_server, antiphon_ports, 120.0, jitter=10, seconds=4.0)
    ticks = [t for d, t in events if d[0] == CLOCK and t <= snap.time]
    arriving = 60.0 / (24 * _slope(ticks[24:]))
    print(f"\njack_midi_clock -b 120 -J 10: arriving {arriving:.3f} BPM; follower {snap.bpm:.3f} BPM, "
          f"resets {follower.resets}")
    if abs(arriving / 120.0 - 1.0) > 0.01:
        pytest.skip(f"JACK dummy server starved on this machine: arriving {arriving:.2f} BPM for nominal 120")
    assert snap.locked
    # jack_midi_clock's -J 10 jitter plus the JACK period leave the follower's instantaneous tempo
    # within about 2 BPM of the delivered one (measured 0.03-1.9 BPM over repeated runs; the
    # fake-time unit tests hold 0.5 BPM under uniform 10 % jitter). Answer timing does not depend on
    # it: clock-locked notes go out on their 0xF8.
    assert abs(snap.bpm - arriving) < 2.5 and abs(snap.bpm - 120.0) < 3.0


def _check_paired(notes: list[bytes]) -> None:
    sounding: set[tuple[int, int]] = set()
    for m in notes:
        key = (m[0] & 0x0F, m[1])
        if m[0] & 0xF0 == 0x90 and m[2] > 0:
            assert key not in sounding, f"second note-on for sounding {key}"
            sounding.add(key)
        else:
            assert key in sounding, f"note-off for silent {key}"
            sounding.discard(key)
    assert not sounding, f"left sounding: {sounding}"


# python-rtmidi's JACK output drops a message when a period's buffer overflows (seen once in five runs:
# 129 of 130 recorded); the live path is checked sent == recorded in tests/test_live_jack.py
@pytest.mark.flaky(reruns=2)
def test_sender_notes_through_jack(jack_server, antiphon_ports):
    _, out, _ = antiphon_ports
    dump = jack_server.midi_dump("antiphon_rec")
    jack_server.connect(out.name, dump.port)
    time.sleep(0.2)
    sent: list[bytes] = []

    def send(msg: bytes) -> None:
        sent.append(msg)
        out.send_message(msg)

    sender = TimedSender(send)
    t0 = time.perf_counter() + 0.2
    deadlines = []
    for i in range(60):
        pitch = 48 + (i * 7) % 36
        on_at = t0 + i * 0.025
        deadlines.append(on_at)
        sender.schedule(on_at, bytes([0x90, pitch, 64 + i % 40]))
        sender.schedule(on_at + 0.060, bytes([0x80, pitch, 0]))  # overlapping notes
    held = time.perf_counter() + 2.0
    sender.schedule(held, bytes([0x91, 60, 100]))  # left sounding until panic
    sender.schedule(held + 10, bytes([0x81, 60, 0]))
    time.sleep(held - time.perf_counter() + 0.1)
    sender.panic()
    time.sleep(0.1)
    stats = sender.stats()
    sender.close()
    time.sleep(0.2)
    events = dump.stop()
    # what the sender handed to the port: every note-on has its note-off, panic output last
    _check_paired([m for m in sent if m[0] & 0xF0 in (0x80, 0x90)])
    resets = {bytes([0xB0, 123, 0]), bytes([0xB1, 123, 0]), bytes([0xB0, 64, 0]), bytes([0xB1, 64, 0])}
    i = sent.index(bytes([0x81, 60, 0]))  # panic: the held note's off, then CC 64/123 per channel
    assert set(sent[i + 1 : i + 5]) == resets and set(sent[i + 5 :]) <= resets  # close() panics again
    ons_sent = [m for m in sent if m[0] == 0x90 and m[2] > 0]
    assert len(ons_sent) == 60
    # onset timing vs deadlines: the dump's frame clock has its own origin, and the dummy driver's
    # sample clock drifts from wall time, so fit frame time = a + b * deadline and take residuals
    rate = jack_server.rate
    recorded = [m for _, m in events]
    ons = [f for f, m in events if m[0] == 0x90 and m[2] > 0]
    n = min(len(ons), len(deadlines))
    xs, ys = deadlines[:n], [f / rate for f in ons[:n]]
    xm, ym = statistics.fmean(xs), statistics.fmean(ys)
    b = sum((x - xm) * (y - ym) for x, y in zip(xs, ys)) / sum((x - xm) ** 2 for x in xs)
    errs = sorted(abs(y - (ym + b * (x - xm))) * 1e3 for x, y in zip(xs, ys))
    p50, p99 = errs[len(errs) // 2], errs[min(len(errs) - 1, int(0.99 * len(errs)))]
    print(f"\nJACK onset error vs deadlines (offset and drift removed, period {jack_server.period} frames = "
          f"{jack_server.period / rate * 1e3:.2f} ms, JACK/wall speed {b:.4f}): p50 {p50:.3f} ms, p99 {p99:.3f} ms; "
          f"sender lateness p50 {stats.late_p50_ms:.3f} ms, p99 {stats.late_p99_ms:.3f} ms; "
          f"recorded {len(recorded)} of {len(sent)} messages")
    if recorded != sent:
        import difflib

        diff = [d for d in difflib.ndiff([m.hex() for m in sent], [m.hex() for m in recorded]) if d[0] in "+-"]
        print("sent vs recorded:", diff[:10])
        # rtmidi's JACK output queues messages in a ringbuffer and writes them all at frame 0 of the
        # next cycle; when a starved server delays cycles, more pile up than the port's MIDI buffer
        # (a few hundred bytes at -p 64) holds, and rtmidi drops the rest silently.
        if abs(b - 1.0) > 0.01:
            pytest.skip(f"JACK server starved (speed {b:.3f} of wall time): it recorded {len(recorded)} of "
                        f"{len(sent)} messages")
        assert recorded == sent
    _check_paired([m for m in recorded if m[0] & 0xF0 in (0x80, 0x90)])
    assert p50 < 50.0  # loose: a loaded CI box
