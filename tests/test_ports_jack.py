"""Antiphon's JACK client, the python-rtmidi fallback, the I/O process and `antiphon live`'s ports, on a real
(private, dummy-driver) JACK server: JACK's default asynchronous one, as users run it.

    jack_midi_clock ──▶ Antiphon In (native client: C process callback, no Python in JACK's thread)
                    └─▶ dump                          Antiphon Out ──▶ dump
Notes queued for a 0xF8 must come out in the same cycle, at the same frame, as that 0xF8 (native), or within
a poll and a JACK period of it (python-rtmidi, polled). Figures print with `pytest -s`."""
from __future__ import annotations

import bisect
import os
import statistics
import subprocess
import sys
import threading
import time

import pytest

from antiphon.plugin import ports
from antiphon.plugin.clock import CLOCK, START, STOP, ClockFollower
from tests.jack import require_native

pytestmark = [pytest.mark.jack, pytest.mark.slow]


def starved(arriving: float, bpm: float, figures: str) -> None:
    """Skip, with the figures, when the dummy server itself runs more than 2 % off wall time: its --no-realtime
    driver thread starved by other jobs on this machine, cycles come late and clients (the clock master too)
    miss them; that measures the machine, not Antiphon."""
    if abs(arriving / bpm - 1.0) > 0.02:
        pytest.skip(f"JACK dummy server starved: the clock arrives at {arriving:.1f} BPM for {bpm:g} ({figures})")


@pytest.fixture
def native(jack_server):
    from antiphon.plugin.jack_native import NativeJack

    require_native()
    io = NativeJack.open()
    try:
        yield io
    finally:
        io.close()


def test_one_client_named_antiphon_with_both_ports(jack_server, native):
    assert (native.client_name, native.in_name, native.out_name) == ("Antiphon", "Antiphon:Antiphon In",
                                                                       "Antiphon:Antiphon Out")
    names = jack_server.ports()
    assert [n for n in names if n.startswith("Antiphon")] == ["Antiphon:Antiphon In", "Antiphon:Antiphon Out"]
    listing = ports.list_ports(["jack"])["jack"]  # through the system's libjack
    assert native.out_name in listing["inputs"] and native.in_name in listing["outputs"]
    assert native.thread_policy() == 1 or os.geteuid() != 0  # SCHED_FIFO where the system allows it


def test_open_io_names_refused_in_one_line(jack_server):
    from antiphon.plugin.sender_process import open_io

    require_native()
    dump = jack_server.midi_dump("named_rec")
    io = open_io("jack", out_port="named_rec")
    try:
        assert io.out_name == dump.port and jack_server.connections()["Antiphon:Antiphon Out"] == [dump.port]
    finally:
        io.close()
    with pytest.raises(ValueError, match=r"no jack MIDI output port matching 'no such synth'; available: .*named_rec"):
        open_io("jack", out_port="no such synth")
    # our own ports are never candidates: Antiphon Out can never be wired into Antiphon In
    with pytest.raises(ValueError, match="no jack MIDI input port matching 'Antiphon Out'"):
        open_io("jack", in_port="Antiphon Out")


def _ticked(io, jack_server, bpm: float, seconds: float, schedule=None, busy_thread: bool = True):
    """jack_midi_clock into `io` for `seconds` with a pure-Python thread busy in this process; a reader thread
    feeds a ClockFollower with what `io` stamped; `schedule(follower, io)` runs on it after each batch.
    Returns (follower, input events, dump events, the dump's client name)."""
    follower = ClockFollower(internal_bpm=100)
    events: list = []
    stop = threading.Event()

    def reader():
        while not stop.is_set():
            io.poll()
            got = io.read_input()
            for t, msg, ordinal, epoch, frame, *_ in got:
                events.append((t, msg, ordinal, epoch, frame))
                follower.feed(msg[0], msg[1:], t, ordinal, epoch)
            if schedule is not None:
                schedule(follower, io)
            time.sleep(0.0005)

    def burn():
        x = 0
        while not stop.is_set():
            for i in range(1000):
                x += i * i

    clock = jack_server.midi_clock(bpm)
    dump = jack_server.midi_dump(f"tick_rec{len(jack_server.children)}")
    threads = [threading.Thread(target=reader, daemon=True)] + ([threading.Thread(target=burn, daemon=True)]
                                                                  if busy_thread else [])
    for t in threads:
        t.start()
    try:
        jack_server.connect(clock.port, io.in_name)
        jack_server.connect(clock.port, dump.port)
        jack_server.connect(io.out_name, dump.port)
        jack_server.transport("locate 0")
        time.sleep(0.2)  # or jack_midi_clock sends Continue instead of Start
        jack_server.transport("play")
        time.sleep(seconds)
        jack_server.transport("stop")
        deadline = time.monotonic() + 3.0  # jack_midi_clock sends Stop a cycle or more after jack_transport's
        while not any(e[1][0] == STOP for e in list(events)) and time.monotonic() < deadline:
            time.sleep(0.02)
        time.sleep(0.1)
    finally:
        stop.set()
        for t in threads:
            t.join(2)
        clock.stop()
    return follower, events, dump.stop(), dump.port.split(":")[0]


def _every_beat(follower, io, queued=set()):
    """Queue a note-on on each beat two beats ahead, and its note-off 6 ticks later, by 0xF8 ordinal."""
    snap = follower.snapshot()
    if not snap.running or snap.source != "midi":
        return
    for beat in range(int(snap.tick) // 24 + 1, int(snap.tick) // 24 + 3):
        where = follower.ordinal_of(beat * 24)
        if where is None or (where, id(io)) in queued:
            continue
        queued.add((where, id(io)))
        epoch, ordinal = where
        pitch = 60 + beat % 12
        io.at_tick(epoch, ordinal, bytes([0x90, pitch, 90]), tag=beat)
        io.at_tick(epoch, ordinal + 6, bytes([0x80, pitch, 0]))


def _frame_errors(dump_events) -> tuple[list[int], list[int], list[int]]:
    ticks = [f for f, m in dump_events if m[0] == CLOCK]
    ons = [f for f, m in dump_events if m[0] == 0x90 and m[2] > 0]
    errs = []
    for f in ons:
        i = bisect.bisect_left(ticks, f)
        errs.append(min(abs(f - ticks[j]) for j in (i - 1, i) if 0 <= j < len(ticks)))
    return ticks, ons, errs


@pytest.mark.parametrize("bpm", [120.0, 176.0])
def test_native_notes_go_out_with_their_tick(jack_server, native, bpm):
    """No Python in JACK's thread: a note queued for a 0xF8 comes out at that 0xF8's very frame, with a busy
    Python thread in the process that queues them; the follower locks and loses no tick."""
    log_at = len(jack_server.log())
    follower, events, dump, recorder = _ticked(native, jack_server, bpm, 4.0, _every_beat)
    ticks, ons, errs = _frame_errors(dump)
    received = [e for e in events if e[1][0] == CLOCK]
    st = native.stats()
    snap = follower.snapshot()
    stamps = [e[0] for e in received[24:]]
    arriving = 60.0 / (24 * statistics.linear_regression(range(len(stamps)), stamps).slope)
    xruns = jack_server.xruns("Antiphon", log_at)
    print(f"\nnative, jack_midi_clock -b {bpm:g}, a busy Python thread beside: {len(received)} ticks received "
          f"({len(ticks)} in the dump), arriving at {arriving:.2f} BPM by the wall clock, follower {snap.bpm:.2f} BPM, "
          f"lost {follower.lost_ticks}; {len(ons)} notes "
          f"on ticks, frame error max {max(errs) if errs else None}; late for their tick {st['late']}; longest "
          f"callback {st['max_cycle_ns'] / 1000:.0f} us; server log: {xruns} late cycles naming Antiphon, "
          f"{jack_server.process_errors(log_at)} process errors in all")
    assert len(ons) >= 6 and max(errs) == 0
    assert st["late"] == 0 and st["in_dropped"] == 0
    starved(arriving, bpm, f"lost {follower.lost_ticks} ticks, {jack_server.process_errors(log_at)} process errors")
    # a tick can only be lost in a cycle the server marks late (ours, or the master's); the follower counts
    # it as the native client did (so the notes queued by count stay on their ticks: frame error 0 above)
    assert follower.lost_ticks == st["lost_ticks"] <= xruns + jack_server.xruns("jack_midi_clock", log_at)
    recorder_late = jack_server.xruns(recorder, log_at)
    assert abs(len(received) - len(ticks)) <= 1 or recorder_late  # both may miss the clock's last tick at Stop
    statuses = [e[1][0] for e in events]
    assert START in statuses and STOP in statuses
    assert abs(snap.bpm - arriving) < 2.5  # the dummy driver may run slower than wall time under load


@pytest.mark.parametrize("first", ["notes", "clock"])
def test_a_note_on_the_frame_of_a_tick_carries_that_ticks_ordinal(jack_server, native, first):
    """A DAW sends its note with the 0xF8 of its tick, at the same frame; JACK merges two sources' events of
    one frame in whichever order, so the note may come first in our buffer. It was sent on that tick: it must
    carry that 0xF8's ordinal (one less and the song position, hence the recording, puts it a tick early),
    and the 0xF8 must be read first. Here a second native client sends a note at the frame of every beat's
    0xF8, its port connected to ours before the clock's, then after it."""
    from antiphon.plugin.jack_native import NativeJack

    sender = NativeJack.open(client_name="tick_sender", in_port="in", out_port="out")
    follower = ClockFollower(internal_bpm=100)
    events: list = []
    stop = threading.Event()

    def reader():
        while not stop.is_set():
            sender.poll()
            for t, msg, ordinal, epoch, frame, *_ in sender.read_input():
                follower.feed(msg[0], msg[1:], t, ordinal, epoch)
            _every_beat(follower, sender)
            native.poll()
            events.extend(native.read_input())
            time.sleep(0.0005)

    thread = threading.Thread(target=reader, daemon=True)
    clock = jack_server.midi_clock(150.0)
    try:
        links = [(sender.out_name, native.in_name), (clock.port, native.in_name)]
        for src, dst in (links if first == "notes" else links[::-1]) + [(clock.port, sender.in_name)]:
            jack_server.connect(src, dst)
        thread.start()
        jack_server.transport("locate 0")
        time.sleep(0.2)
        jack_server.transport("play")
        time.sleep(3.0)
        jack_server.transport("stop")
        time.sleep(0.3)
    finally:
        stop.set()
        thread.join(2)
        clock.stop()
        sender.close()
    tick_at_frame = {frame: (i, ordinal) for i, (_, msg, ordinal, _, frame, *_) in enumerate(events) if msg[0] == CLOCK}
    on_ticks = [(i, ordinal, tick_at_frame[frame]) for i, (_, msg, ordinal, _, frame, *_) in enumerate(events)
                if msg[0] == 0x90 and frame in tick_at_frame]
    print(f"\n{first} connected first: {len(on_ticks)} notes on the frame of a 0xF8; ordinals "
          f"{[(o, t[1]) for _, o, t in on_ticks[:6]]}")
    assert len(on_ticks) >= 4, events
    assert all(ordinal == tick[1] and tick[0] < i for i, ordinal, tick in on_ticks), on_ticks


def test_the_connection_watch_sees_a_synth_patched_in_again(jack_server, native):
    """python-rtmidi's output is watched through the system's libjack: a new connection (a synth patched in
    again) is seen once; a port that does not exist gives no watch."""
    assert ports.JackConnectionWatch.open("nobody:nothing") is None
    watch = ports.JackConnectionWatch.open(native.out_name)
    dump = jack_server.midi_dump("watched_rec")
    try:
        assert watch is not None and not watch.changed()
        jack_server.connect(native.out_name, dump.port)
        assert watch.changed() and watch.connections() == {dump.port}
        assert not watch.changed()
    finally:
        watch is not None and watch.close()
        dump.stop()


def test_an_armed_reflex_answers_the_players_note_at_its_own_frame(jack_server, native):
    """The accompaniment's reaction armed ahead goes out in the JACK cycle of the player's note-on, at that
    note's frame, once; a note outside the table's epoch or ordinals gets nothing; the note's input record
    names the table that answered it. And a note wakes the forwarder's wait at once."""
    from antiphon.plugin.jack_native import NativeJack

    player = NativeJack.open(client_name="reflex_player", in_port="in", out_port="out")
    rec = jack_server.frame_recorder("reflex_rec")
    records = []
    try:
        for src in (player.out_name, native.out_name):
            jack_server.connect(src, rec.port)
        jack_server.connect(player.out_name, native.in_name)
        time.sleep(0.2)

        def strike(pitch: int) -> None:
            player.send(bytes([0x90, pitch, 90]))
            time.sleep(0.08)
            player.send(bytes([0x80, pitch, 0]))
            time.sleep(0.08)
            records.extend(r for r in native.read_input() if r[1][0] == 0x90)

        woke = []
        waiter = threading.Thread(target=lambda: (native.wait_input(5.0), woke.append(time.monotonic())))
        waiter.start()
        time.sleep(0.2)
        sent_at = time.monotonic()
        strike(60)  # nothing armed
        waiter.join(6.0)
        assert woke and woke[0] - sent_at < 1.0, "the wait did not end with the note"
        _, _, ordinal, epoch, _, reflex = records[0]
        assert reflex == 0
        reaction = {64: [bytes([0x81, 40, 0]), bytes([0x91, 52, 80])], 67: [bytes([0x91, 55, 80])]}
        native.arm_reflexes(7, epoch + 1, ordinal, ordinal + 10, reaction)  # another transport epoch
        strike(64)
        native.arm_reflexes(8, epoch, ordinal + 1, ordinal + 10, reaction)  # ordinals still to come
        strike(64)
        native.arm_reflexes(9, epoch, ordinal, ordinal + 10, reaction)
        strike(64)  # answered
        strike(64)  # the table disarmed on answering
        native.arm_reflexes(10, epoch, ordinal, ordinal + 10, reaction)
        native.arm_reflexes(0, 0, 0, 0, {})  # disarmed
        strike(67)
        native.send(bytes([0x81, 52, 0]))
        time.sleep(0.2)
    finally:
        events = rec.stop()
        player.close()
    assert [r[5] for r in records] == [0, 0, 0, 9, 0, 0], records
    player_ons = [f for f, m in events if m == bytes([0x90, 64, 90])]
    answers = [f for f, m in events if m[0] & 0xF0 == 0x90 and m[0] & 0x0F == 1]
    assert len(player_ons) == 4 and answers == [player_ons[2]], (player_ons, events)
    assert bytes([0x81, 40, 0]) not in [m for _, m in events]  # an off for a silent note is skipped
    assert native.stats()["reflexes"] == 1


def test_polled_rtmidi_fallback_sends_within_a_period_and_a_poll(jack_server):
    """Where the native client cannot be built: python-rtmidi, never given a callback, polled from a thread."""
    from antiphon.plugin.polled_io import PolledIO

    io = PolledIO("jack")
    try:
        assert io.in_name.endswith(":Antiphon In") and io.out_name.endswith(":Antiphon Out")
        follower, events, dump, _ = _ticked(io, jack_server, 150.0, 4.0, _every_beat)
    finally:
        io.close()
    ticks, ons, errs = _frame_errors(dump)
    period = jack_server.period
    print(f"\npython-rtmidi polled, 150 BPM: {len(ons)} notes, frame error vs their tick: max {max(errs)}, "
          f"median {statistics.median(errs)} ({period} frames a period); lost ticks {follower.lost_ticks}")
    assert len(ons) >= 6
    assert max(errs) <= 3 * period  # the next cycle, or the one after when the poll came late



def test_polled_rtmidi_wakes_the_forwarder_on_a_note_not_on_clock(jack_server):
    """The forwarder's wait ends when a note arrives; the clock's own 0xF8s wake nobody."""
    from antiphon.plugin.jack_native import NativeJack
    from antiphon.plugin.polled_io import PolledIO

    require_native()
    io = PolledIO("jack")
    player = NativeJack.open(client_name="wake_player", in_port="in", out_port="out")
    stop = threading.Event()
    poller = threading.Thread(target=lambda: [io.poll() or time.sleep(0.0005) for _ in iter(stop.is_set, True)],
                              daemon=True)
    clock = jack_server.midi_clock(150.0)
    try:
        jack_server.connect(player.out_name, io.in_name)
        jack_server.connect(clock.port, io.in_name)
        poller.start()
        jack_server.transport("locate 0")
        jack_server.transport("play")
        time.sleep(0.3)
        io.wait_input(0.0)  # whatever came before
        t0 = time.monotonic()
        io.wait_input(0.5)
        assert time.monotonic() - t0 >= 0.4, "the clock woke the forwarder"
        woke = []
        waiter = threading.Thread(target=lambda: (io.wait_input(5.0), woke.append(time.monotonic())))
        waiter.start()
        time.sleep(0.1)
        sent_at = time.monotonic()
        player.send(bytes([0x90, 60, 90]))
        waiter.join(6.0)
        assert woke and woke[0] - sent_at < 1.0, "the note did not wake the forwarder"
        player.send(bytes([0x80, 60, 0]))
        time.sleep(0.05)
    finally:
        jack_server.transport("stop")
        stop.set()
        poller.join(2.0)
        clock.stop()
        player.close()
        io.close()

@pytest.fixture
def counting_server():
    """A synchronous server (jackd -S), for the tests that count every message jack_midi_dump hears: on the
    asynchronous one a recorder that misses a cycle (its own late wake-up, on a machine shared with other
    jobs) loses that cycle's MIDI, and the count would measure jack_midi_dump, not Antiphon."""
    from tests.jack import JackServer, jack_env

    require_native()
    with JackServer(sync=True) as server, jack_env(server):
        yield server


def test_native_cancel_release_and_pairing(counting_server):
    """The tick queue's cut (cancel_from), Release, and the note bookkeeping, on what JACK delivered."""
    from antiphon.plugin.jack_native import NativeJack

    jack_server, native = counting_server, NativeJack.open()
    try:
        _cancel_release_and_pairing(jack_server, native)
    finally:
        native.close()


def _cancel_release_and_pairing(jack_server, native):
    dump = jack_server.midi_dump("book_rec")
    jack_server.connect(native.out_name, dump.port)
    clock = jack_server.midi_clock(200)
    jack_server.connect(clock.port, native.in_name)
    time.sleep(0.2)
    native.send(bytes([0x90, 60, 100]))
    native.send(bytes([0x90, 60, 101]))  # sounding already: its note-off goes first
    native.send(bytes([0x80, 61, 0]))  # silent: skipped
    time.sleep(0.1)
    # the clock stopped: ordinals are counted from the next Start; queue far ahead, then cut
    jack_server.transport("locate 0")
    time.sleep(0.2)
    jack_server.transport("play")
    deadline = time.monotonic() + 5
    epoch = None
    while epoch is None and time.monotonic() < deadline:
        for _, msg, ordinal, ep, *_ in native.read_input():
            if msg[0] == START:
                epoch, base = ep, ordinal
        time.sleep(0.01)
    assert epoch is not None, "no Start"
    # Start ended what the transport's old timeline had started: note 60 is released by the client itself
    native.at_tick(epoch, base + 20, bytes([0x90, 64, 90]))
    native.at_tick(epoch, base + 40, bytes([0x80, 64, 0]))  # dropped by the cut: 64 ends at the cut instead
    native.at_tick(epoch, base + 50, bytes([0x90, 65, 90]))  # dropped by the cut
    native.cancel_from(epoch, base + 30)
    native.at_tick(epoch - 1, base + 25, bytes([0x90, 66, 90]))  # an old epoch: never sent
    time.sleep(60 / 200 / 24 * 60)
    native.send(bytes([0x90, 67, 90]))
    time.sleep(0.05)
    native.release(clear_ticks=True, controllers=True)
    time.sleep(0.1)
    st = native.stats()
    jack_server.transport("stop")
    clock.stop()
    events = [m for _, m in dump.stop()]
    notes = [m for m in events if m[0] & 0xF0 in (0x80, 0x90)]
    print(f"\nnative bookkeeping: {[m.hex() for m in notes]}; stale {st['stale']}, skipped offs {st['skipped_offs']}")
    assert notes[:3] == [bytes([0x90, 60, 100]), bytes([0x80, 60, 0]), bytes([0x90, 60, 101])]
    assert notes[3] == bytes([0x80, 60, 0])  # the Start released it
    assert notes[4:6] == [bytes([0x90, 64, 90]), bytes([0x80, 64, 0])]  # 64 on its tick, ended at the cut
    assert bytes([0x90, 65, 90]) not in notes and bytes([0x90, 66, 90]) not in notes
    assert notes[6:] == [bytes([0x90, 67, 90]), bytes([0x80, 67, 0])]  # Release ended what sounded
    assert events[-2:] == [bytes([0xB0, 64, 0]), bytes([0xB0, 123, 0])]
    assert st["stale"] == 1 and st["skipped_offs"] == 1 and native.sounding() == []


def test_after_stop_cycles_the_count_is_what_went_out(counting_server):
    """`antiphon live`'s exit line reads the client's count after it left the process graph: a message still
    queued then never goes out, so the count the line gives and what a recorder heard are the same."""
    from antiphon.plugin.jack_native import NativeJack

    native = NativeJack.open()
    try:
        dump = counting_server.midi_dump("final_rec")
        counting_server.connect(native.out_name, dump.port)
        time.sleep(0.2)
        for pitch in range(60, 64):
            native.send(bytes([0x90, pitch, 90]))
        deadline = time.monotonic() + 2.0
        while native.pending() and time.monotonic() < deadline:
            time.sleep(0.002)
        time.sleep(0.05)
        native.stop_cycles()
        sent = native.stats()["sent"]
        native.send(bytes([0x90, 70, 90]))
        time.sleep(0.2)
        assert native.stats()["sent"] == sent == 4
        assert native.read_sent()[-1][1] == bytes([0x90, 63, 90])
    finally:
        native.close()
    heard = [m for _, m in dump.stop() if m[0] & 0xF0 == 0x90]
    assert heard == [bytes([0x90, p, 90]) for p in range(60, 64)]


def test_timed_sender_through_the_native_client(counting_server):
    """Deadline-scheduled notes (the internal clock) through the native client: every message written, none
    dropped (a full port buffer carries to the next cycle), onsets on their deadlines within a period or two."""
    from antiphon.plugin.jack_native import NativeJack

    jack_server, native = counting_server, NativeJack.open()
    try:
        _timed_sender(jack_server, native)
    finally:
        native.close()


def _timed_sender(jack_server, native):
    dump = jack_server.midi_dump("timed_rec")
    jack_server.connect(native.out_name, dump.port)
    time.sleep(0.2)
    sender = native.timed
    t0 = time.perf_counter() + 0.2
    deadlines = []
    for i in range(60):
        pitch = 48 + (i * 7) % 36
        on_at = t0 + i * 0.025
        deadlines.append(on_at)
        sender.schedule(on_at, bytes([0x90, pitch, 64 + i % 40]))
        sender.schedule(on_at + 0.060, bytes([0x80, pitch, 0]))  # overlapping notes
    time.sleep(t0 + 60 * 0.025 + 0.3 - time.perf_counter())
    st = native.stats()
    events = dump.stop()
    ons = [f for f, m in events if m[0] == 0x90 and m[2] > 0]
    rate = jack_server.rate
    xs, ys = deadlines[: len(ons)], [f / rate for f in ons]
    xm, ym = statistics.fmean(xs), statistics.fmean(ys)
    b = sum((x - xm) * (y - ym) for x, y in zip(xs, ys)) / sum((x - xm) ** 2 for x in xs)
    errs = sorted(abs(y - (ym + b * (x - xm))) * 1e3 for x, y in zip(xs, ys))
    offs = [m for _, m in events if m[0] & 0xF0 == 0x80]
    print(f"\nTimedSender -> native client: {len(ons)} note-ons of 60, onset error vs deadlines (offset and drift "
          f"removed) p50 {errs[len(errs) // 2]:.3f} ms, max {errs[-1]:.3f} ms; {st['sent']} written, carried to a "
          f"later cycle {st['carried']}, lost {st['lost']}")
    assert len(ons) == 60 and len(offs) == 60 and st["lost"] == 0 and st["sent"] == 120


def test_antiphon_live_is_one_client_and_a_bad_port_is_one_line(jack_server, tmp_path):
    """`antiphon live` on JACK: both ports under one client named Antiphon; `--out-port nope`: one clean line."""
    from tests.jack import live
    from tests.reliability import tiny_style

    require_native()
    style = tiny_style(tmp_path / "tiny.style")
    app = live(jack_server, "--style", str(style))
    try:
        mine = [p for p in jack_server.ports() if p.startswith("Antiphon")]
        assert mine == ["Antiphon:Antiphon In", "Antiphon:Antiphon Out"], jack_server.ports()
    finally:
        app.stop()
    exe = os.path.join(os.path.dirname(sys.executable), "antiphon")
    r = subprocess.run([exe, "live", "--backend", "jack", "--headless", "--style", str(style), "--out-port", "nope"],
                       capture_output=True, text=True, env=jack_server.env, timeout=120)
    print(f"\n--out-port nope: exit {r.returncode}, stderr {r.stderr!r}")
    assert r.returncode == 1
    assert r.stderr.count("\n") == 1 and r.stderr.startswith("antiphon live: no jack MIDI output port matching 'nope'")
    assert "Error" not in r.stderr and "sender process" not in r.stderr and "Traceback" not in r.stderr


def test_python_rtmidi_output_through_the_fallback(counting_server):
    """ports.open_output (python-rtmidi) still sends; the rtmidi input is polled (it has no callback at all)."""
    jack_server = counting_server
    out = ports.open_output("jack", client_name="Antiphon rt")
    inp = ports.open_input("jack", client_name="Antiphon rt in")
    try:
        jack_server.connect(out.name, inp.name)
        time.sleep(0.2)
        for p in range(10):
            out.send_message(bytes([0x90, 60 + p, 100]))
        time.sleep(0.2)
        got = inp.poll()
    finally:
        out.close()
        inp.close()
    assert [m for m, _ in got] == [bytes([0x90, 60 + p, 100]) for p in range(10)]
    assert all(d >= 0 for _, d in got)


def test_native_counts_the_ticks_that_never_arrived(counting_server):
    """A master whose 0xF8s come every 20 ms in frames loses one (a gap of two periods), later sends one late (a
    long interval, then a short one): the native client counts the lost one and not the late one, so notes
    queued by ordinal before the loss still go out with the 0xF8 of the tick they were meant for. A note queued
    for the lost one goes out with the next 0xF8, and the log of what was sent says so (at once, with the
    ordinal and sample frame it went out with), so that a recording puts it where it was heard."""
    import rtmidi

    from antiphon.plugin.jack_native import NativeJack

    jack = counting_server
    native = NativeJack.open()
    out = rtmidi.MidiOut(rtmidi.API_UNIX_JACK, name="ticker")
    out.open_virtual_port("out")
    dump = jack.midi_dump("count_rec")
    try:
        jack.connect("ticker:out", native.in_name)
        jack.connect("ticker:out", dump.port)
        jack.connect(native.out_name, dump.port)
        time.sleep(0.3)
        epoch = 0  # no transport message yet
        # ticks are numbered from 1 as the client counts them; the master's tick 31 will never arrive
        for ordinal, pitch in ((20, 60), (31, 61), (40, 62), (60, 64)):
            native.at_tick(epoch, ordinal, bytes([0x90, pitch, 90]))
        plan = [i * 0.02 for i in range(70) if i != 30]  # tick 31 (index 30) lost
        plan = [t + (0.014 if i == 50 else 0.0) for i, t in enumerate(plan)]  # one late by 0.7 of a period
        t0 = time.perf_counter() + 0.05
        for t in plan:
            while time.perf_counter() < t0 + t:
                time.sleep(0.0002)
            out.send_message([0xF8])
        time.sleep(0.2)
        st = native.stats()
        sent = {m[1]: (ordinal, at_once, frame) for _, m, _, ordinal, at_once, frame in native.read_sent()}
    finally:
        native.close()
        out.close_port()
        out.delete()
    events = dump.stop()
    ticks = [f for f, m in events if m[0] == 0xF8]
    notes = {m[1]: f for f, m in events if m[0] == 0x90}
    # the Nth master tick is the (N-1)th received once tick 31 is gone
    expected = {60: ticks[19], 61: ticks[30], 62: ticks[38], 64: ticks[58]}
    print(f"\nnative tick count: {len(ticks)} received, lost counted {st['lost_ticks']}; notes at frames "
          f"{notes} (expected {expected})")
    assert st["lost_ticks"] == 1 and st["ticks"] == len(ticks) == 69
    # the master never sent it: not a tick lost in a cycle the server skipped this client in
    assert st["lost_ticks_own"] <= st["missed_cycles"] and (st["missed_cycles"] or st["lost_ticks_own"] == 0)
    assert notes == expected
    # jack_midi_dump's frames count from its own start: the log's are JACK's, one offset apart
    shift = sent[60][2] - ticks[19]
    assert sent[60][:2] == (20, False) and sent[62][:2] == (40, False) and sent[64][:2] == (60, False), sent
    assert sent[61] == (32, True, ticks[30] + shift), sent
