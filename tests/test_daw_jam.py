"""A jam with a DAW as its master, as Ardour drives Antiphon: `antiphon live --backend jack --headless` on the
default asynchronous JACK server, another process busy, and one client (the DAW) that writes its clock, its
transport and its track (the call, on channel 2) at exact sample frames from one port:

    daw:midi_out (Start and the first 0xF8 in one frame; the call on its ticks) ──▶ Antiphon In, recorder
    Antiphon Out ──▶ recorder

The DAW plays a call, Antiphon answers; one bar and a half into each answer the DAW's track comes in again (an
interruption); after the last one the DAW loops to the song's start with a Song Position Pointer alone while its
clock runs (Reaper's loop; `--loop-by stop` would be Ardour's Stop/SPP/Continue) and plays the first call again
over the loop, then stops. Checked: every answer's first note on its beat, at the frame of that beat's 0xF8;
every answer note sounding at the player's interrupting note ends within one period of it; nothing of Antiphon
sounds over the loop jump, and the call over the loop is answered on its beat.

`ANTIPHON_MEASURE_INTERRUPTIONS=24 ANTIPHON_JAM_BPM=150 pytest -s tests/test_daw_jam.py` measures more."""
from __future__ import annotations

import os
import signal
import threading
import time

import pytest

from tests.daw_streams import CLOCK, RATE, SONG_POSITION, START, STOP
from tests.jack import ANSWER_CH, CALL_CH, TPB, find_port, live, phrase_events, require_native, soprano

pytestmark = [pytest.mark.jack, pytest.mark.slow]

BAR = 4 * TPB


def song(interruptions: int):
    """The DAW's song: [(song tick, message)] of its track for one pass, the answers' expected first ticks, the
    interrupting calls' first ticks, and where the loop jumps back (the tick of the 0xF8 the jump comes before)."""
    first, again = soprano(8.0), soprano(4.0)
    call = 2 * BAR - TPB  # the pickup on beat 4 of bar 2: the follower has locked by then
    events = phrase_events(first, call)
    answers, interrupting = [call + 8 * TPB + TPB], []
    for _ in range(interruptions):
        call = answers[-1] + BAR + 2 * TPB  # a bar and a half into the answer
        interrupting.append(call)
        events += phrase_events(again, call)
        answers.append(call + 4 * TPB + TPB)
    return sorted(events, key=lambda e: e[0]), answers, interrupting, answers[-1] + 36


def daw_stream(bpm: float, interruptions: int, loop_by: str):
    """[(frame from the start, message)] and, per 0xF8 in order, (pass, song tick): the song, then the loop back
    to its start with its first call again, then Stop."""
    track, answers, interrupting, jump = song(interruptions)
    interval = RATE * 60.0 / (bpm * 24)
    by_tick: dict[int, list[bytes]] = {}
    for tick, msg in track:
        by_tick.setdefault(tick, []).append(msg)
    loop_end = answers[0] + BAR  # the second pass: the first call, and a bar of its answer
    out, clocks = [(0, bytes([START]))], []
    index = 0
    for pass_, ticks in ((0, range(0, jump)), (1, range(0, loop_end))):
        for tick in ticks:
            frame = round(index * interval)
            if pass_ == 1 and tick == 0:  # the loop: in the interval before this 0xF8
                before = frame - round(interval / 2)
                if loop_by == "stop":
                    out += [(before, bytes([STOP])), (before, bytes([SONG_POSITION, 0, 0]))]
                    out.append((frame, bytes([0xFB])))
                else:
                    out.append((before, bytes([SONG_POSITION, 0, 0])))
            out.append((frame, bytes([CLOCK])))
            clocks.append((pass_, tick))
            out += [(frame, m) for m in by_tick.get(tick, ()) if pass_ == 0 or tick < answers[0]]
            index += 1
    out.append((round(index * interval - interval / 2), bytes([STOP])))
    return out, clocks, answers, interrupting


def play(daw, events, base: int, stop: threading.Event) -> None:
    """Queues the DAW's stream a second ahead of its frames (the native client's frame queue holds 4096)."""
    k = 0
    while k < len(events) and not stop.is_set():
        horizon = (daw.frame_now() - base + 2**31) % 2**32 - 2**31 + RATE  # (frames wrap at 32 bits)
        while k < len(events) and events[k][0] < horizon:
            daw.at_frame((base + events[k][0]) % 2**32, events[k][1])
            k += 1
        time.sleep(0.05)


def test_a_daw_master_start_in_one_frame_interruptions_and_a_loop(jack_server, tmp_path):
    from antiphon.plugin.jack_native import NativeJack

    require_native()
    bpm = float(os.environ.get("ANTIPHON_JAM_BPM", "120"))
    n = int(os.environ.get("ANTIPHON_MEASURE_INTERRUPTIONS", "3"))
    loop_by = os.environ.get("ANTIPHON_LOOP_BY", "spp")
    events, clocks, answers, interrupting = daw_stream(bpm, n, loop_by)
    jack = jack_server
    jack.busy()
    rec = jack.frame_recorder("daw_jam_rec")
    daw = NativeJack.open(client_name="daw", in_port="unused", out_port="midi_out")
    app = live(jack, "--style", "jsb-quarter", "--seed", "7", "--channel", "1", "--response-bars", "2")
    stop = threading.Event()
    feeder = None
    try:
        a_in, a_out = find_port(jack, ":Antiphon In"), find_port(jack, ":Antiphon Out")
        for src, dst in ((daw.out_name, a_in), (daw.out_name, rec.port), (a_out, rec.port)):
            jack.connect(src, dst)
        base = (daw.frame_now() + RATE // 2) % 2**32
        feeder = threading.Thread(target=play, args=(daw, events, base, stop), daemon=True)
        feeder.start()
        sent, deadline = [], time.monotonic() + 3.0 * events[-1][0] / RATE + 30.0
        while len(sent) < len(events) and time.monotonic() < deadline and app.popen.poll() is None:
            time.sleep(0.1)
            sent += daw.read_sent()
        time.sleep(0.5)
        app.popen.send_signal(signal.SIGINT)
        rc = app.popen.wait(15.0)
    finally:
        stop.set()
        if feeder is not None:
            feeder.join(2)
        daw.close()
    heard = rec.stop()
    log = app.output()
    assert rc == 0, log[-3000:]
    assert len(sent) == len(events), f"the DAW sent {len(sent)} of {len(events)} messages"
    assert sent[0][1] == bytes([START]) and sent[1][1] == bytes([CLOCK]) and sent[0][5] == sent[1][5], \
        "Start and the first 0xF8 went out in one frame"
    period = jack.period
    clock_frames = [frame for _, msg, _, _, _, frame in sent if msg[0] == CLOCK]
    assert len(clock_frames) == len(clocks)
    where = dict(zip(clock_frames, clocks))  # frame of a DAW 0xF8 -> (pass, song tick)
    answer = [(f, m) for f, m in heard if len(m) == 3 and m[0] & 0xF0 in (0x80, 0x90) and m[0] & 0x0F == ANSWER_CH]
    ons = [(f, m[1]) for f, m in answer if m[0] & 0xF0 == 0x90 and m[2]]
    offs = [(f, m[1]) for f, m in answer if m[0] & 0xF0 == 0x80 or (m[0] & 0xF0 == 0x90 and not m[2])]
    call_ons = [frame for _, msg, _, _, _, frame in sent
                if len(msg) == 3 and msg[0] == 0x90 | CALL_CH and msg[2]]
    frame_of = {c: f for f, c in zip(clock_frames, clocks)}

    # 1. every answer's first note on its beat: at the frame of that beat's 0xF8 (the DAW's tick, not one after)
    expected = [(0, a) for a in answers] + [(1, answers[0])]
    firsts = []
    for pass_, tick in expected:
        start = frame_of[(pass_, tick - TPB)]
        first = next((f for f, _ in ons if f >= start), None)
        firsts.append((pass_, tick, where.get(first), first))
    wrong = [x for x in firsts if x[2] != (x[0], x[1])]
    # 2. each interrupting call's first note ends every answer note sounding then, within one period
    cuts = []
    for tick in interrupting:
        note = frame_of[(0, tick)]
        sounding = [(f, p) for f, p in ons if f < note and not any(f <= g < note and q == p for g, q in offs)]
        ends = [next((g for g, q in offs if q == p and g >= note), None) for _, p in sounding]
        cuts.append((tick, len(sounding), [None if g is None else g - note for g in ends]))
        later = [f for f, _ in ons if note <= f < frame_of[(0, tick + 4 * TPB)]]
        assert not later, f"the answer went on over the call at tick {tick}: note-ons at frames {later}, its first note at {note}"
    late_cuts = [c for c in cuts if any(d is None or d > period for d in c[2])]
    # 3. nothing of Antiphon sounds over the loop jump
    jump = next(frame for _, msg, _, _, _, frame in sent if msg[0] == SONG_POSITION)
    over = [(f, p) for f, p in ons if f < jump and not any(f <= g <= jump and q == p for g, q in offs)]
    after_jump = [f for f, _ in ons if jump < f < frame_of[(1, answers[0] - TPB)]]
    sounding_at_end = {}
    for f, m in answer:
        sounding_at_end[m[1]] = m[0] & 0xF0 == 0x90 and m[2] > 0
    measured = [d for _, k, ds in cuts if k for d in ds if d is not None]
    print(f"\nDAW master at {bpm:g} BPM, Start and its first 0xF8 in one frame, loop by {loop_by}: answers' first notes "
          f"(pass, expected tick, DAW tick of its frame): {[(p, t, w) for p, t, w, _ in firsts]}")
    print(f"interruptions: {len(cuts)}, {sum(1 for c in cuts if c[1])} with answer notes sounding; their note-offs "
          f"after the player's note, frames: max {max(measured, default=0)} ({period} a period), "
          f"all {sorted(set(measured))}; at the jump: {len(over)} left sounding")
    assert not wrong, f"answers' first notes off their beat (pass, tick, heard at, frame): {wrong}"
    assert not late_cuts, f"answer notes not ended within a period of the player's note: {late_cuts}"
    assert not over and not after_jump, (over, after_jump)
    assert not any(sounding_at_end.values()), sounding_at_end
    assert len(call_ons) >= 2 * (n + 2)
