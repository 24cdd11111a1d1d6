"""Input floods and garbage: 10,000 MIDI messages a second for 10 s into a real `antiphon live`'s Antiphon In
(notes, CCs, clock, sysex, data bytes without status, note-on velocity 0) from a real JACK port, on JACK's default
asynchronous server; the engine stays up, its memory stays bounded, drops are counted (and are never note-offs),
and the next phrase is answered. A held note whose note-off never comes, then the DAW's All Notes Off (CC 123):
answered too. Hypothesis feeds random bytes into the engine the way the I/O process forwards them, and into the
clock follower. Figures print with `pytest -s`; `ANTIPHON_MEASURE_RUNS=N` repeats the flood N times."""
from __future__ import annotations

import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from antiphon.jack_rig import unrecorded
from tests.jack import JackServer, find_port, measure_runs
from tests.reliability import (Keyboard, count, hanging, jack_env, make_engine, peak_rss_kb, rss_kb, start_live,
                               status_state, tiny_style, wait_until)

ROOT = Path(__file__).resolve().parent.parent

FLOODER = r"""
import random, sys, time
import rtmidi
rate, seconds = float(sys.argv[1]), float(sys.argv[2])
out = rtmidi.MidiOut(rtmidi.API_UNIX_JACK, name="flooder")
out.open_virtual_port("out")
print("ready", flush=True)
sys.stdin.readline()
rnd = random.Random(5)
kinds = ["on", "on0", "off", "cc", "clock", "sysex", "running", "pb", "at"]
sent = {k: 0 for k in kinds}
errors = 0
t0 = time.perf_counter()
n = 0
while True:
    now = time.perf_counter() - t0
    if now >= seconds:
        break
    due = int(now * rate)
    while n < due:
        k = rnd.choice(kinds)
        ch = rnd.randrange(16)
        if k == "on":
            m = [0x90 | ch, rnd.randrange(128), rnd.randrange(1, 128)]
        elif k == "on0":
            m = [0x90 | ch, rnd.randrange(128), 0]
        elif k == "off":
            m = [0x80 | ch, rnd.randrange(128), rnd.randrange(128)]
        elif k == "cc":  # not the CCs mapped to controls (21-23), the pedal (64) or the phrase trigger (80)
            m = [0xB0 | ch, rnd.choice([1, 7, 10, 11, 71, 74, 91, 93]), rnd.randrange(128)]
        elif k == "clock":
            m = [0xF8]
        elif k == "sysex":
            m = [0xF0] + [rnd.randrange(128) for _ in range(rnd.randrange(1, 60))] + [0xF7]
        elif k == "running":  # data bytes with no status byte (running status from a careless device)
            m = [rnd.randrange(128), rnd.randrange(128)]
        elif k == "pb":
            m = [0xE0 | ch, rnd.randrange(128), rnd.randrange(128)]
        else:
            m = [0xD0 | ch, rnd.randrange(128)]
        try:
            out.send_message(m)
            sent[k] += 1
        except Exception:
            errors += 1
        n += 1
    time.sleep(0.0005)
for ch in range(16):  # a well-behaved end: every note released
    for p in range(128):
        out.send_message([0x80 | ch, p, 0])
    if ch % 2:
        time.sleep(0.01)
print("sent", n, sum(sent.values()), errors, sent, flush=True)
sys.stdin.readline()
out.close_port()
out.delete()
"""


def _status(app) -> dict:
    lines = [l for l in app.output().splitlines() if " in " in l and " drop " in l]
    m = re.search(r"in (\d+) out (\d+) drop (\d+)", lines[-1]) if lines else None
    return {"in": int(m.group(1)), "out": int(m.group(2)), "drop": int(m.group(3))} if m else {}


def _answered_after(events, call_channel: int = 1) -> float | None:
    """Beats (clock ticks / 24) from the call's last note-off to the answer's first note-on, as recorded."""
    ticks = [f for f, m in events if m[0] == 0xF8]
    offs = [f for f, m in events if m[0] & 0xF0 == 0x80 and m[0] & 0x0F == call_channel]
    if not offs:
        return None
    call_end = max(offs)
    answer = [f for f, m in events if m[0] == 0x90 and m[2] > 0 and f > call_end]
    if not answer:
        return None
    return sum(1 for t in ticks if call_end < t <= min(answer)) / 24


PLANNED = pytest.param((), id="planned")  # the default: answers planned (the call is bounded to its last notes)


@pytest.mark.jack
@pytest.mark.slow
@pytest.mark.parametrize("run", range(measure_runs(1)))
@pytest.mark.parametrize("args", [pytest.param(("--candidates", "1"), id="sampled"), PLANNED])
def test_flood_of_10000_messages_a_second(tmp_path, run, args):
    style = tiny_style(tmp_path / "tiny.style")
    script = tmp_path / "flooder.py"
    script.write_text(FLOODER)
    with JackServer() as jack, jack_env(jack):
        app, a_in = start_live(jack, style, *args)
        a_out = find_port(jack, ":Antiphon Out")
        pid = app.popen.pid
        rss_before = rss_kb(pid)
        flood = subprocess.Popen([sys.executable, str(script), "10000", "5"], stdin=subprocess.PIPE,
                                 stdout=subprocess.PIPE, text=True, env=jack.env)
        try:
            assert flood.stdout.readline().strip() == "ready"
            src = jack.wait_for_port("flooder:out")
            jack.connect(src, a_in)
            flood.stdin.write("go\n")
            flood.stdin.flush()
            peak_during = 0
            t0 = time.monotonic()
            while flood.poll() is None and time.monotonic() - t0 < 30:
                peak_during = max(peak_during, rss_kb(pid))
                if time.monotonic() - t0 > 5.5:
                    break
                time.sleep(0.25)
            summary = flood.stdout.readline().strip()
            flood_s = time.monotonic() - t0
            assert app.popen.poll() is None, app.output()[-3000:]
            time.sleep(1.0)
            after = _status(app)
            hwm = peak_rss_kb(pid)

            # then a real clock, a keyboard and a recorder: the next phrase is answered
            clock = jack.midi_clock(180)
            dump = jack.midi_dump("floodrec")
            keys = Keyboard(jack, a_in, client="floodkeys")
            for s, d in [(clock.port, a_in), (clock.port, dump.port), (keys.port, dump.port), (a_out, dump.port)]:
                jack.connect(s, d)
            jack.transport("locate 0")
            time.sleep(0.2)
            jack.transport("play")
            time.sleep(1.0)
            keys.phrase()
            try:
                wait_until(lambda: status_state(app) == "answering", 20, "the answer after the flood")
            except AssertionError:
                print("\n".join(app.output().splitlines()[-12:]))
                raise
            time.sleep(1.5)
            jack.transport("stop")
            time.sleep(0.3)
            app.popen.send_signal(signal.SIGINT)
            rc = app.popen.wait(15)
            keys.close()
            events = dump.stop()
            log = app.output()
        finally:
            if flood.poll() is None:
                flood.stdin.write("bye\n")
                flood.stdin.flush()
                flood.wait(10)
    delay_beats = _answered_after(events)
    lost = unrecorded(events, log)
    answer = [(f, m) for f, m in events if m[0] & 0x0F == 0 and m[0] & 0xF0 in (0x80, 0x90)]
    print(f"\nflood: {summary}; {flood_s:.1f} s; antiphon status after it: {after}; RSS {rss_before // 1024} MB before, "
          f"peak {hwm // 1024} MB (VmHWM), {peak_during // 1024} MB sampled during; engine exit {rc}")
    print(f"after the flood: answer began {delay_beats} beats after the call's last note-off; answer on Antiphon "
          f"Out {count(answer)}, {lost} of Antiphon's messages missing from the recording")
    assert rc == 0
    assert lost >= 0, "antiphon live did not say how many messages it sent"
    if lost > 0:
        pytest.skip(f"the server starved: jack_midi_dump lost {lost} of the messages Antiphon sent, so the "
                    f"recording cannot say when the answer began or what was left sounding")
    assert after["in"] > 10_000 and after["drop"] >= 0
    assert hwm - rss_before < 200 * 1024, "memory grew by more than 200 MB under the flood"
    assert delay_beats is not None and 0 < delay_beats <= 2.0
    assert not hanging(events)


@pytest.mark.jack
@pytest.mark.slow
def test_a_note_off_that_never_comes_then_all_notes_off(tmp_path):
    """The player's last note never gets its note-off (lost on the way, a stuck key); the DAW sends All Notes
    Off (CC 123, as many do on Stop or Panic): the session lets go of the note and answers."""
    style = tiny_style(tmp_path / "tiny.style")
    with JackServer() as jack, jack_env(jack):
        app, a_in = start_live(jack, style)
        a_out = find_port(jack, ":Antiphon Out")
        dump = jack.midi_dump("heldrec")
        keys = Keyboard(jack, a_in, client="heldkeys")
        for s, d in [(keys.port, dump.port), (a_out, dump.port)]:
            jack.connect(s, d)
        keys.phrase((60, 64, 67))
        keys.send([0x91, 72, 90])  # held: its note-off is "lost"
        time.sleep(0.6)  # a bar is 1.33 s at 180 BPM: the hold is not stale yet
        assert status_state(app) == "listening"
        t0 = time.monotonic()
        keys.send([0xB1, 123, 0])
        # without CC 123 only the stale-hold rule (2 bars after the held note-on: 2.7 s) would end the phrase
        wait_until(lambda: status_state(app) == "answering", 1.5, "the answer after All Notes Off")
        waited = time.monotonic() - t0
        time.sleep(0.5)
        app.popen.send_signal(signal.SIGINT)
        rc = app.popen.wait(15)
        keys.close()
        events = dump.stop()
    answer = [(f, m) for f, m in events if m[0] & 0x0F == 0 and m[0] & 0xF0 in (0x80, 0x90)]
    print(f"\nheld note, then CC 123: answering {waited:.2f} s after it; answer {count(answer)}")
    assert rc == 0 and count(answer)["note_ons"] > 0 and not hanging(events)


# ---- random bytes into the engine -------------------------------------------------------------------------
@pytest.fixture(scope="module")
def engine():
    with JackServer(period=256) as server, jack_env(server):
        eng = make_engine(bpm=240).start()
        try:
            yield eng
        finally:
            eng.close()


def _alive(eng) -> None:
    assert any(t.name == "antiphon-engine" and t.is_alive() for t in eng._threads)
    assert eng.sender.alive


@pytest.mark.jack
@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.lists(st.one_of(st.binary(min_size=0, max_size=12),
                          st.lists(st.integers(0, 255), max_size=6).map(bytes),
                          st.builds(lambda s, d: bytes([s]) + d, st.integers(0x80, 0xFF), st.binary(max_size=3))),
                min_size=1, max_size=40))
def test_random_bytes_into_the_engine(engine, messages):
    """Whatever the I/O process forwards (it passes on what the port delivered, up to 3 bytes, unchecked), the
    engine's reader checks it and the engine goes on."""
    now = time.perf_counter()
    engine._on_input([(now, m[:3], 0, 0, None) for m in messages])
    time.sleep(0.003)
    _alive(engine)
    assert not [e for e in engine.snapshot().errors if "injected" not in e]


@pytest.mark.jack
@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.lists(st.tuples(st.sampled_from([0xF8, 0xFA, 0xFB, 0xFC, 0xF2]), st.binary(max_size=3),
                          st.floats(-1.0, 1.0, allow_nan=False)), min_size=1, max_size=60))
def test_random_clock_messages_into_the_follower(messages):
    from antiphon.plugin.clock import MAX_BPM, MIN_BPM, ClockFollower

    c = ClockFollower(internal_bpm=120)
    c.start()
    t = time.perf_counter()
    for status, data, dt in messages:
        t += abs(dt) * 0.05
        c.feed(status, data, t)
        tick = c.tick_at(t)
        assert tick == tick  # not NaN
        c.time_of(tick)
        assert MIN_BPM <= c.bpm <= MAX_BPM or c.source == "internal", c.bpm


def test_a_full_inbox_drops_note_ons_never_note_offs():
    from antiphon.plugin.live import INBOX_LIMIT

    eng = make_engine()  # not started: nothing drains the inbox
    for i in range(INBOX_LIMIT + 500):
        eng._enqueue(bytes([0x90, i % 128, 64]), 0.0)
    assert len(eng._inbox) == INBOX_LIMIT and eng._dropped_inbox == 500
    kept = [bytes([0x80, 60, 0]), bytes([0x90, 61, 0]), bytes([0xB0, 123, 0]), bytes([0xB0, 120, 0]),
            bytes([0xB0, 64, 0]), bytes([0xB0, 121, 0])]
    for m in kept:
        eng._enqueue(m, 0.0)
    eng._enqueue(bytes([0xB0, 7, 100]), 0.0)  # a volume CC: dropped like a note-on
    assert [e[0] for e in list(eng._inbox)[-len(kept):]] == kept and eng._dropped_inbox == 501


def test_a_backlog_from_before_a_start_holds_no_note_after_it():
    """Note-ons still queued when the transport moves (a flood's backlog, handled after the Start) belong to the
    old timeline: the session let go of it, and they are not played on the new one (or they would hold the
    phrase open until it goes stale). Their note-offs, and everything stamped after the Start, are handled."""
    from antiphon.plugin.clock import CLOCK, START

    eng = make_engine()  # not started: the inbox is handled here, by hand
    eng.clock.feed(START, b"", 1.0, ordinal=0, epoch=1)
    eng.clock.feed(CLOCK, b"", 1.01, ordinal=1, epoch=1)
    eng._enqueue(bytes([0x90, 60, 90]), 0.9, 0, 0)  # before the Start
    eng._enqueue(bytes([0x90, 62, 90]), 0.95, 0, 0)
    eng._enqueue(bytes([0x80, 62, 0]), 0.97, 0, 0)
    eng._enqueue(bytes([0x90, 64, 90]), 1.02, 1, 1)  # after it
    eng.session.locate(eng.clock.tick_at(1.01))
    while eng._inbox:
        eng._handle_input(*eng._inbox.popleft())
    assert sorted(eng.session._player_sounding) == [64] and eng._stale_note_ons == 2
