"""`antiphon live --backend jack --headless` as a real process on a private JACK server.

    jack_midi_clock ──▶ Antiphon In, player (clock-driven), dump
    player:out (channel 2: a Bach soprano line, sent on the clock's ticks) ──▶ Antiphon In, dump
    Antiphon Out (channel 1) ──▶ dump

One jack_midi_dump client records the clock, the call and the answer, so all three share its frame
timeline (sample-accurate; the dummy driver may run slower than wall time on a loaded machine, and
everything here is measured in frames and clock ticks, never in wall time). Per tempo: the call,
the full answer, the call again, then transport Stop (or SIGINT to antiphon) in the middle of the
second answer. Figures print with `pytest -s`.
"""
from __future__ import annotations

import bisect
import os
import re
import signal
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest

from tests.jack import JackServer, find_port, live, midi_player, wait_for_line

pytestmark = [pytest.mark.jack, pytest.mark.slow]

ROOT = Path(__file__).resolve().parent.parent
TPB = 24  # ticks per beat (quarter)
CALL_CH = 1  # the player plays on channel 2
ANSWER_CH = 0  # antiphon answers on channel 1


def style_arg() -> str:
    """The shipped default style once it exists; until then the partly trained JSB style."""
    if os.environ.get("ANTIPHON_TEST_STYLE"):
        return os.environ["ANTIPHON_TEST_STYLE"]
    if (ROOT / "engine" / "styles" / "default.style").exists():
        return "default"
    return str(ROOT / "runs" / "jsb-a.style")


def soprano(first_beats: float) -> list[tuple[float, float, int]]:
    """(onset beat, length in beats, MIDI pitch) of bach/bwv66.6's soprano, its first `first_beats`
    beats (the piece opens with a one-beat pickup)."""
    from music21 import corpus

    notes = corpus.parse("bach/bwv66.6").parts[0].flatten().notes
    return [(float(n.offset), float(n.quarterLength), n.pitch.midi) for n in notes if n.offset < first_beats]


def phrase_events(notes, start_tick: int, channel: int = CALL_CH, gap: int = 2) -> list[tuple[int, bytes]]:
    """Messages at song ticks: each note released `gap` ticks before its written end."""
    ev = []
    for onset, length, pitch in notes:
        on = start_tick + round(onset * TPB)
        off = start_tick + round((onset + length) * TPB) - gap
        ev.append((on, bytes([0x90 | channel, pitch, 80])))
        ev.append((off, bytes([0x80 | channel, pitch, 0])))
    return sorted(ev, key=lambda e: (e[0], e[1][0] & 0xF0 == 0x90))


@dataclass
class Recording:
    ticks: list[int]  # frames of the 0xF8s
    call: list[tuple[int, bytes]]
    answer: list[tuple[int, bytes]]
    other: list[tuple[int, bytes]]  # transport messages, CCs

    @classmethod
    def of(cls, events):
        ticks, call, answer, other = [], [], [], []
        for f, m in events:
            if m[0] == 0xF8:
                ticks.append(f)
            elif m[0] & 0xF0 in (0x80, 0x90) and m[0] & 0x0F == CALL_CH:
                call.append((f, m))
            elif m[0] & 0xF0 in (0x80, 0x90) and m[0] & 0x0F == ANSWER_CH:
                answer.append((f, m))
            else:
                other.append((f, m))
        return cls(ticks, call, answer, other)

    def position(self, frame: float) -> float:
        """Clock position (in ticks counted from the first 0xF8 recorded) of a frame."""
        return float(np.interp(frame, self.ticks, np.arange(len(self.ticks))))

    def onset_errors_ms(self, ons: list[int], rate: int) -> np.ndarray:
        errs = []
        for f in ons:
            i = bisect.bisect_left(self.ticks, f)
            near = [abs(f - self.ticks[j]) for j in (i - 1, i) if 0 <= j < len(self.ticks)]
            errs.append(min(near) / rate * 1e3)
        return np.array(errs)


def ons(events) -> list[int]:
    return [f for f, m in events if m[0] & 0xF0 == 0x90 and m[2] > 0]


def hanging(events, until: int | None = None) -> set[int]:
    """Pitches whose last note-on (up to frame `until`) has no note-off after it."""
    sounding: set[int] = set()
    for f, m in events:
        if until is not None and f > until:
            break
        if m[0] & 0xF0 == 0x90 and m[2] > 0:
            sounding.add(m[1])
        else:
            sounding.discard(m[1])
    return sounding


def sounding_at(events, frame: int) -> set[int]:
    return hanging([e for e in events if e[0] <= frame])


def pitch_class_r(call, answer) -> float:
    a = np.bincount([m[1] % 12 for _, m in call if m[0] & 0xF0 == 0x90 and m[2]], minlength=12).astype(float)
    b = np.bincount([m[1] % 12 for _, m in answer if m[0] & 0xF0 == 0x90 and m[2]], minlength=12).astype(float)
    if a.std() == 0 or b.std() == 0:
        return 0.0
    return float(np.corrcoef(a, b)[0, 1])


def split_answers(rec: Recording, call_ends: list[int]) -> list[list[tuple[int, bytes]]]:
    """The answer's messages after each call's last note-off (up to the next call's first note)."""
    bounds = call_ends + [None]
    out = []
    for i, end in enumerate(call_ends):
        nxt = bounds[i + 1]
        nxt_start = None
        if nxt is not None:
            nxt_start = min(f for f, m in rec.call if f > end and m[0] & 0xF0 == 0x90)
        out.append([(f, m) for f, m in rec.answer if f > end and (nxt_start is None or f < nxt_start)])
    return out


def chorale(first_beats: float) -> list[tuple[float, float, int]]:
    """All four voices of bach/bwv66.6, its first `first_beats` beats: a dense call."""
    from music21 import corpus

    out = []
    for part in corpus.parse("bach/bwv66.6").parts:
        out += [(float(n.offset), float(n.quarterLength), n.pitch.midi) for n in part.flatten().notes
                if n.offset < first_beats]
    return sorted(out)


@pytest.mark.parametrize("bpm,jitter,ending,dense,panel", [
    (140.0, 0.0, "stop", False, False),
    (110.0, 10.0, "sigint", False, False),
    (176.0, 0.0, "stop", True, True),
], ids=["140bpm-stop", "110bpm-J10-sigint", "176bpm-dense-chorale-with-panel"])
# on this 2-core box one answer note in roughly one run of six lands two JACK periods (2.67 ms) after its
# tick (seen once with the panel redrawing at 176 BPM); a rerun must meet the same 2.5 ms bound
@pytest.mark.flaky(reruns=1)
def test_live_answers_on_the_clock(bpm, jitter, ending, dense, panel):
    phrase = chorale if dense else soprano
    first = phrase(8.0)  # pickup + two phrases, to the second fermata (8 beats)
    second = phrase(4.0)  # pickup + first phrase, to the first fermata
    call1 = 2 * 96 - TPB  # the pickup on beat 4 of bar 2: the follower has locked by then
    call1_end = call1 + 8 * TPB
    answer1_end = call1_end + TPB + 2 * 96  # answers start a beat after the call (silence 1 beat), 2 bars long
    call2 = (answer1_end // 96 + 1) * 96 + 96 - TPB  # a bar of rest, then the pickup again
    call2_end = call2 + 4 * TPB
    cut_tick = call2_end + TPB + 36  # 1.5 beats into the second answer
    events = phrase_events(first, call1) + phrase_events(second, call2)

    with JackServer(sync=True) as jack:
        clock = jack.midi_clock(bpm, jitter)
        dump = jack.midi_dump("antiphon_rec")
        player = midi_player(jack, events)
        app = live(jack, "--style", style_arg(), "--seed", "7", "--channel", "1", "--response-bars", "2",
                   panel=panel)
        a_in, a_out = find_port(jack, ":Antiphon In"), find_port(jack, ":Antiphon Out")
        for src, dst in [(clock.port, a_in), (clock.port, player.clock_port), (clock.port, dump.port),
                         (player.port, a_in), (player.port, dump.port), (a_out, dump.port)]:
            jack.connect(src, dst)
        jack.transport("locate 0")
        time.sleep(0.2)  # or jack_midi_clock sends Stop+Continue instead of Start
        jack.transport("play")
        player.wait_tick(cut_tick, timeout=60.0)
        if ending == "stop":
            jack.transport("stop")
            time.sleep(0.5)
            if not panel:
                wait_for_line(app, r"stopped ", 5.0)  # its status line shows the transport stopped
        t_cut = time.monotonic()
        app.popen.send_signal(signal.SIGINT)
        rc = app.popen.wait(10.0)
        time.sleep(0.3)
        if ending == "sigint":
            jack.transport("stop")
            time.sleep(0.2)
        rec_events = dump.stop()
        log = app.output()
    print(f"\n--- {bpm:g} BPM -J {jitter:g}, {'4-voice' if dense else 'soprano'} call, "
          f"{'panel' if panel else 'headless'}, ending by {ending}; antiphon exited {rc} "
          f"{time.monotonic() - t_cut:.2f} s after SIGINT")
    print("\n".join(log.splitlines()[-3:]))
    assert rc == 0, log[-3000:]
    rec = Recording.of(rec_events)
    rate = jack.rate
    assert len(rec.ticks) > cut_tick, f"clock ticks recorded: {len(rec.ticks)}"
    # the tempo as delivered, in the dump's frame domain (the dummy server may run slow on wall time)
    frames_per_tick = float(np.median(np.diff(rec.ticks)))
    print(f"clock: {len(rec.ticks)} ticks, median {frames_per_tick:.1f} frames/tick "
          f"(nominal {rate * 60 / (bpm * TPB):.1f})")

    # the call as recorded: both phrases, every note
    call_ons = ons(rec.call)
    assert len(call_ons) == len(first) + len(second), rec.call
    call_offs = [f for f, m in rec.call if m[0] & 0xF0 == 0x80]
    end1 = sorted(call_offs)[len(first) - 1]
    end2 = sorted(call_offs)[-1]
    answers = split_answers(rec, [end1, end2])
    answer1, answer2 = answers

    # 1. the answer starts within 2 beats of the call's last note-off
    delays = []
    for end, ans in ((end1, answer1), (end2, answer2)):
        assert ons(ans), f"no answer after the call ending at frame {end}: {log[-2000:]}"
        delays.append((rec.position(ons(ans)[0]) - rec.position(end)) / TPB)
    print(f"answer delay after the call's last note-off: {', '.join(f'{d:.2f}' for d in delays)} beats")
    assert all(0 < d <= 2.0 for d in delays), delays

    # 2. onsets against the clock's ticks (frame domain)
    onset_frames = ons(answer1) + ons(answer2)
    errs = rec.onset_errors_ms(onset_frames, rate)
    p50, p99, worst = np.percentile(errs, 50), np.percentile(errs, 99), errs.max()
    period_ms = jack.period / rate * 1e3
    print(f"answer onsets vs nearest 0xF8 ({len(errs)} notes, JACK period {period_ms:.2f} ms): "
          f"p50 {p50:.2f} ms, p99 {p99:.2f} ms, max {worst:.2f} ms")
    assert len(errs) >= 4
    assert p99 <= 2.5, sorted(errs)[-10:]

    # 3. nothing hangs: after Stop (or SIGINT) mid-answer, every note-on has its note-off
    stop_frame = next((f for f, m in rec.other if m[0] == 0xFC), None) if ending == "stop" else None
    cut_frame = stop_frame if stop_frame is not None else (answer2[-1][0] if answer2 else None)
    cut_pos = rec.position(cut_frame) if cut_frame is not None else float("nan")
    sounding = sounding_at(rec.answer, cut_frame - 1) if stop_frame is not None else set()
    left = hanging(rec.answer)
    after_stop = hanging(rec.answer, until=stop_frame + 2 * frames_per_tick) if stop_frame is not None else None
    resets = [m for _, m in rec.other if m[0] == 0xB0 | ANSWER_CH and m[1] == 123]
    print(f"{ending}: {len(sounding) if stop_frame else '-'} answer notes sounding at the Stop "
          f"(tick {cut_pos:.0f}, second answer {len(ons(answer2))} note-ons); left hanging "
          f"{'after Stop: ' + str(len(after_stop)) + ', ' if after_stop is not None else ''}at exit: {len(left)}; "
          f"CC 123 sent {len(resets)}x")
    assert not left, f"notes left hanging: {sorted(left)}"
    if after_stop is not None:
        assert not after_stop, f"still sounding two ticks after Stop: {sorted(after_stop)}"
    assert resets, "no All Notes Off at the end"

    # 4. nothing lost between the sender and the port: what it says it sent is what JACK recorded
    sent = int(re.search(r"^stopped: (\d+) messages sent", log, re.M).group(1))
    recorded = len(rec.answer) + sum(1 for _, m in rec.other if m[0] & 0x0F == ANSWER_CH and m[0] & 0xF0 == 0xB0)
    print(f"messages: the sender says it sent {sent}, the dump recorded {recorded}")
    assert recorded == sent

    # 5. the answer's pitch classes follow the call's
    r = pitch_class_r(rec.call, answer1 + answer2)
    print(f"pitch-class histogram r(call, answers) = {r:.2f} with style {style_arg()}")
    assert r > 0.0
