"""DAW transport streams (tests/daw_streams.py), replayed sample-exactly into both port layers at once, on the
default asynchronous JACK server:

    daw (a native client writing each message at its frame) ──▶ Antiphon In (native C client)
                                                            ├─▶ Antiphon In (python-rtmidi, polled)
                                                            └─▶ recorder ◀── both Antiphon Outs

Each port layer's input feeds a clock follower, as `antiphon live` does. On every beat it hears, the listener
queues a note for that beat plus 12 ticks (ending 28 ticks later) by the follower's count of 0xF8s, as the engine
queues an answer. Checked per stream and port layer: the song tick of every 0xF8 against the DAW's own position
(and where song tick 0 is, written out below), the master tick each note went out on (the native client: the
same frame as that 0xF8; polled: within three periods after it), and that no note sounds over a jump."""
from __future__ import annotations

import threading
import time

import pytest

from antiphon.plugin.clock import ClockFollower
from tests.daw_streams import CLOCK, FREE, PLAYER_ON, RATE, TRANSPORT, streams
from tests.jack import require_native

pytestmark = [pytest.mark.jack, pytest.mark.slow]

NAMES = [s.name for s in streams()]
BACKENDS = ("native", "polled")
CHANNEL = {"native": 0, "polled": 1}
# (index of a 0xF8 in the stream, the song tick Antiphon must give it): where song tick 0, or the song, is
ANCHORS = {
    NAMES[0]: [(0, 0), (191, 191)],
    NAMES[1]: [(0, 0), (191, 191)],
    NAMES[2]: [(0, 0), (125, 125), (126, None), (165, None), (166, 126), (261, 221)],
    NAMES[3]: [(0, 228), (191, 419)],
    NAMES[4]: [(0, 300), (95, 395)],
    NAMES[5]: [(0, 0), (191, 191), (192, 0), (383, 191), (384, 0), (479, 95)],
    NAMES[6]: [(0, 0), (191, 191), (192, 0), (383, 191), (384, 0), (479, 95)],
    NAMES[7]: [(30, 0), (221, 191)],
    NAMES[8]: [],  # no transport: the first 0xF8 is a beat (checked below), each one after it one tick more
    NAMES[9]: [(0, 0), (95, 95)],
    NAMES[10]: [(0, 0), (383, 383), (431, 431)],
}
POLLED_SLACK_PERIODS = 3  # the polled layer sends in the cycle after its poll, or the one after that
NOTE_AT, NOTE_TICKS = 12, 28  # a note on every beat heard, 12 ticks after it, 28 ticks long


class Listener:
    """One port layer, read as `antiphon live` reads it: input to a clock follower; a note queued by 0xF8 count."""

    def __init__(self, io, channel: int, polled: bool):
        self.io, self.channel, self.polled = io, channel, polled
        self.lock = threading.Lock()
        self.follower: ClockFollower | None = None
        self.ticks: list[tuple[int | None, float, int | None]] = []  # per 0xF8 received: (frame, time, song tick)
        self.final_bpm = 0.0
        self.running = False

    def begin(self) -> None:
        with self.lock:
            self.follower = ClockFollower(internal_bpm=120.0)
            self.follower.start(time.perf_counter() - 0.37)  # live runs its internal clock until MIDI clock comes
            self.ticks = []

    def step(self) -> None:
        if self.polled:
            self.io.poll()
        with self.lock:
            f = self.follower
            running = f is not None and f.poll()
            if self.running and not running:  # the silence rule: the clock stopped with no Stop, and live panics
                self.io.release(clear_ticks=True)
            self.running = running
            for t, msg, ordinal, epoch, frame, *_ in self.io.read_input():
                if f is None or (msg[0] != CLOCK and msg[0] not in TRANSPORT):
                    continue
                f.feed(msg[0], msg[1:], t, ordinal, epoch, frame)
                if msg[0] == CLOCK:
                    tick = f.last_tick
                    self.ticks.append((frame, t, tick))
                    self.final_bpm = f.bpm
                    if tick is not None and tick % 24 == 0:
                        self._queue_note(f, tick)
                    if tick == 0:  # an answer plays from here: the player's note-on ends it in the port layer
                        self.io.arm_interrupt(f.ordinal_of(0)[0], True)

    def _queue_note(self, f: ClockFollower, beat: int) -> None:
        pitch = 60 + (beat // 24) % 12
        on, off = f.ordinal_of(beat + NOTE_AT), f.ordinal_of(beat + NOTE_AT + NOTE_TICKS)
        if on is not None and off is not None:
            self.io.at_tick(*on, bytes([0x90 | self.channel, pitch, 100]))
            self.io.at_tick(*off, bytes([0x80 | self.channel, pitch, 0]))


@pytest.fixture(scope="module")
def replayed(jack_server):
    """Every stream played once into both port layers; per stream: what the DAW sent (frames as written), what
    the recorder heard, and each listener's ticks."""
    from antiphon.plugin.jack_native import NativeJack
    from antiphon.plugin.polled_io import PolledIO

    require_native()
    daw = NativeJack.open(client_name="daw", in_port="unused", out_port="midi_out")
    native = NativeJack.open()
    polled = PolledIO("jack")
    rec = NativeJack.open(client_name="stream_rec", in_port="in", out_port="unused")
    listeners = {"native": Listener(native, CHANNEL["native"], False), "polled": Listener(polled, CHANNEL["polled"], True)}
    stop = threading.Event()
    poll_gap = [0.0]  # the longest the reader was away between two polls (a descheduled poller sends late)

    def read() -> None:
        last = time.perf_counter()
        while not stop.is_set():
            for listener in listeners.values():
                listener.step()
            time.sleep(0.0005)
            now = time.perf_counter()
            poll_gap[0], last = max(poll_gap[0], now - last), now

    reader = threading.Thread(target=read, daemon=True)
    results = {}
    try:
        for dst in (native.in_name, polled.in_name, rec.in_name):
            jack_server.connect(daw.out_name, dst)
        jack_server.connect(native.out_name, rec.in_name)
        jack_server.connect(polled.out_name, rec.in_name)
        reader.start()
        for stream in streams():
            for attempt in (1, 2, 3, 4):
                starved_before = _starved(native, polled)
                for listener in listeners.values():
                    listener.begin()
                poll_gap[0] = 0.0
                rec.read_input()
                base = daw.frame_now() + RATE // 5
                for frame, msg in stream.events:
                    daw.at_frame((base + frame) & 0xFFFFFFFF, msg)
                sent, deadline = [], time.monotonic() + 3.0 * stream.end / RATE + 10.0
                while len(sent) < len(stream.events) and time.monotonic() < deadline:
                    time.sleep(0.05)
                    sent += daw.read_sent()
                time.sleep(0.4)  # the last notes' offs, the polled layer's last poll
                recorded = [(frame, msg) for _, msg, _, _, frame, *_ in rec.read_input()]
                with listeners["native"].lock, listeners["polled"].lock:
                    heard = {name: (list(lst.ticks), lst.final_bpm) for name, lst in listeners.items()}
                late = sum(1 for *_, at_once, _ in sent if at_once)
                starved = [a - b for a, b in zip(_starved(native, polled), starved_before)]
                away = poll_gap[0] > POLLED_SLACK_PERIODS * jack_server.period / RATE
                if not late and not any(starved) and not away:
                    break
                # the machine starved the server: the DAW's own cycle skipped (its stream was not what it wrote), or
                # cycles the native client missed, or 0xF8s the polled layer counted lost, or the poller was away
                # longer than the polled layer's slack; once more, said aloud
                print(f"\n{stream.name}: {late} DAW messages after their frame, (missed cycles, ticks counted lost "
                      f"native, polled) {starved}, poller away {poll_gap[0] * 1000:.1f} ms: played again")
                time.sleep(0.5)
            results[stream.name] = (stream, [(frame, t, msg) for t, msg, _, _, _, frame in sent], recorded, heard)
    finally:
        stop.set()
        reader.join(2)
        for io in (daw, native, polled, rec):
            io.close()
    return results


LOST = "lost"  # a 0xF8 of the DAW's that never reached the port layer (the server dropped that cycle's MIDI)


def _starved(native, polled) -> tuple[int, int, int]:
    st = native.stats()
    return st["missed_cycles"], st["lost_ticks"], polled.stats()["lost_ticks"]


def _daw_ticks(stream, sent):
    """[(frame the DAW's 0xF8 went out at, its time, the DAW's song tick for it)]."""
    clocks = [(f, t) for f, t, m in sent if m[0] == CLOCK]
    assert len(clocks) == len(stream.ticks), "the DAW sent every 0xF8 of its stream"
    return [(f, t, tick) for (f, t), tick in zip(clocks, stream.ticks)]


def _aligned(backend: str, daw, heard) -> list:
    """Antiphon's song tick for each of the DAW's 0xF8s (LOST where none arrived): the native client's by frame,
    the polled layer's by its driver time stamp (within a third of the interval)."""
    if backend == "native":
        by_frame = {frame: tick for frame, _, tick in heard}
        return [by_frame.get(f, LOST) for f, _, _ in daw]
    out, k = [], 0
    for i, (_, t, _) in enumerate(daw):
        gap = (daw[i + 1][1] - t if i + 1 < len(daw) else t - daw[i - 1][1]) / 3
        while k < len(heard) and heard[k][1] < t - gap:
            k += 1
        if k < len(heard) and abs(heard[k][1] - t) <= gap:
            out.append(heard[k][2])
            k += 1
        else:
            out.append(LOST)
    return out


def _lost(ours: list) -> list[int]:
    lost = [i for i, o in enumerate(ours) if o is LOST]
    assert len(lost) <= max(1, len(ours) // 100), f"0xF8s that never reached the port layer: {lost[:10]}"
    return lost


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("name", NAMES)
def test_every_clock_of_the_stream_is_the_daws_song_tick(replayed, name, backend):
    stream, sent, _, heard = replayed[name]
    ticks, bpm = heard[backend]
    daw = _daw_ticks(stream, sent)
    ours = _aligned(backend, daw, ticks)
    lost = _lost(ours)
    for index, tick in ANCHORS[name]:
        assert ours[index] in (tick, LOST), f"0xF8 #{index}: song tick {ours[index]}, the DAW's {tick}"
    wrong = [(i, o, d) for i, (o, (_, _, d)) in enumerate(zip(ours, daw)) if d is not FREE and o not in (d, LOST)]
    assert not wrong, f"(0xF8 #, Antiphon's tick, the DAW's): {wrong[:10]}"
    free = [(i, o) for i, (o, (_, _, d)) in enumerate(zip(ours, daw)) if d is FREE and o is not LOST]
    if free:  # clock before any transport: it starts on a beat and counts on one a tick
        (i0, t0), *_ = free
        assert t0 is not None and (t0 - i0) % 24 == 0, free[:3]
        assert all(o == t0 + i - i0 for i, o in free), free[:10]
    if "ramp" in name:
        assert abs(bpm / 180.0 - 1.0) < 0.02, f"the follower's tempo at the ramp's end: {bpm:.1f} BPM"
    print(f"\n{backend:6s} {name}: 0xF8 #0 is song tick {ours[0]}; song tick 0 at 0xF8s "
          f"{[i for i, o in enumerate(ours) if o == 0]}; {len(ours)} 0xF8s as the DAW counts them"
          f"{f', {len(lost)} never arrived' if lost else ''}")


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("name", NAMES)
def test_notes_go_out_on_their_master_tick_and_none_hangs_over_a_jump(replayed, name, backend, jack_server):
    stream, sent, recorded, heard = replayed[name]
    daw = _daw_ticks(stream, sent)
    heard_ticks = _aligned(backend, daw, heard[backend][0])
    _lost(heard_ticks)
    # the song tick of each of the DAW's 0xF8s: the DAW's own (the test above checks Antiphon's against it), or
    # Antiphon's where the DAW sent no transport yet (one more a tick across one that never arrived)
    ours: list = []
    for o, (_, _, d) in zip(heard_ticks, daw):
        if d is FREE:
            d = o if o is not LOST else (ours[-1] + 1 if ours and ours[-1] is not None else None)
        ours.append(d)
    clock_frames = [f for f, _, _ in daw]
    jumps = [f for f, _, m in sent if m[0] in TRANSPORT]
    ch = CHANNEL[backend]
    notes = [(f, m) for f, m in recorded if len(m) == 3 and m[0] & 0xF0 in (0x80, 0x90) and m[0] & 0x0F == ch]
    slack = 0 if backend == "native" else POLLED_SLACK_PERIODS * jack_server.period
    # python-rtmidi writes at its cycle's first frame: a note sent in the cycle its 0xF8 came in lands before it
    same_cycle = 0 if backend == "native" else jack_server.period - 1
    ons = [(f, m[1]) for f, m in notes if m[0] & 0xF0 == 0x90 and m[2]]
    wrong = []
    for frame, pitch in ons:
        before = [k for k, f in enumerate(clock_frames) if f <= frame + same_cycle]
        i = before[-1] if before else None
        tick = ours[i] if i is not None else None
        if (i is None or frame - clock_frames[i] > slack or tick is None or tick % 24 != NOTE_AT
                or pitch != 60 + ((tick - NOTE_AT) // 24) % 12):
            wrong.append((frame, pitch, i, tick))
    assert not wrong, f"notes off their master tick (frame, pitch, 0xF8 #, its song tick): {wrong[:8]}"
    # every beat heard whose note's tick came on the same timeline (no jump between) got its note
    due = 0
    for i, tick in enumerate(ours):
        if tick is not None and tick % 24 == NOTE_AT:
            j = i - NOTE_AT
            if j >= 0 and ours[j] == tick - NOTE_AT and not any(clock_frames[j] < x <= clock_frames[i] for x in jumps):
                due += 1
    assert len(ons) == due, f"{len(ons)} notes went out, {due} were due"
    hung = []
    for jump in jumps:
        for frame, pitch in ons:
            if frame < jump:
                off = next((f for f, m in notes if f >= frame and m[1] == pitch and (m[0] & 0xF0 == 0x80 or not m[2])),
                           None)
                if off is None or (off > jump + slack):
                    hung.append((pitch, frame, off, jump))
    assert not hung, f"notes sounding over a jump (pitch, on, off, jump frame): {hung[:8]}"
    sounding = {}
    for f, m in notes:
        sounding[m[1]] = m[0] & 0xF0 == 0x90 and m[2] > 0
    assert not any(sounding.values()), f"left sounding at the stream's end: {sounding}"
    print(f"\n{backend:6s} {name}: {len(ons)} notes, each on its master tick; {len(jumps)} transport messages")


@pytest.mark.parametrize("backend", BACKENDS)
def test_the_players_note_ends_the_sounding_answer_in_the_port_layer(replayed, backend, jack_server):
    """Armed, the port layer ends the answer's sounding note at the player's note-on itself: at its frame (native),
    in the poll that reads it (polled); the note's queued note-off, and anything else queued, is dropped."""
    stream, sent, recorded, _ = replayed[NAMES[9]]
    note = next(f for f, _, m in sent if m == PLAYER_ON)
    ch = CHANNEL[backend]
    offs = [f for f, m in recorded if len(m) == 3 and m[0] in (0x80 | ch, 0x90 | ch) and m[1] == 60
            and (m[0] & 0xF0 == 0x80 or not m[2])]
    slack = 0 if backend == "native" else POLLED_SLACK_PERIODS * jack_server.period
    same_cycle = 0 if backend == "native" else note % jack_server.period  # rtmidi writes at its cycle's first frame
    print(f"\n{backend}: the answer's note ended {[f - note for f in offs]} frames after the player's note")
    assert offs and -same_cycle <= offs[0] - note <= slack, (offs, note)
    assert len(offs) == 1, "its queued note-off was dropped"
