"""The live runner: ports, clock, engine thread, I/O process, recorder. The one place where threads meet.

    I/O process (both ports; plugin/sender_process.py) ──events──▶ reader thread here:
        clock messages, with the driver's time stamps ─▶ ClockFollower
        notes, CCs ─▶ bounded inbox (never drops a note-off) ─▶ engine thread: Session
        every message written to Antiphon Out ─▶ the recording (what was sent, where it was sent)
    engine thread ─▶ I/O process: notes for a 0xF8 (MIDI clock) or for a deadline (internal clock)
    recorder thread: saves the recording once a second
    anyone (panel, CLI, CC): Controls (parameters, commands) ─▶ engine thread; snapshot() ◀─ anyone

No Python runs in a MIDI driver's thread; on MIDI clock an answer's note goes out with the master's
0xF8 of its tick, from the I/O process (from C in JACK's cycle where the native client runs), so it
sits on the master's tick whatever the engine's Python is doing. The engine thread never waits on the
panel, the disk or a style load; the panel only reads `snapshot()` and writes through `Controls`.
"""
from __future__ import annotations

import bisect
import itertools
import os
import queue
import sys
import threading
import time
from collections import deque
from dataclasses import dataclass, replace

from antiphon.engine.events import Meter
from antiphon.engine.recorder import Recorder
from antiphon.engine.runtime import StepRuntime
from antiphon.engine.session import ACCOMPANY, CALL_RESPONSE, Session, SessionParams, SessionSnapshot
from antiphon.engine.style import load_style, shipped_styles

from .clock import CLOCK, CONTINUE, SONG_POSITION, START, STOP, ClockFollower, ClockSnapshot
from .ports import message_ok
from .sender import SenderStats
from .polled_io import INTERRUPTED_ANSWER
from .sender_process import GIL_SWITCH_S, IOProcess

INBOX_LIMIT = 4096
REFLEX_TABLES_KEPT = 16
PLAN_SLICE_S = 0.010  # planning an answer ahead takes at most this long per engine iteration
LEARNABLE = ("temperature", "top_p", "mode", "response_bars", "panic")
PROGRAM_CHANGE = 0xC0
PASSTHROUGH_TAG = 1  # the player's notes echoed to the output: not part of the answer
FIRST_TAG = 2
KEPT_CCS = (64, 120, 121, 123)  # sustain, all sound off, reset controllers, all notes off


def must_keep(msg: bytes) -> bool:
    """What a full inbox still takes: note-offs, and the CCs that end held notes (a flood must never
    leave the session waiting for a note-off it dropped)."""
    kind = msg[0] & 0xF0
    return kind == 0x80 or (kind == 0x90 and msg[2] == 0) or (kind == 0xB0 and msg[1] in KEPT_CCS)


@dataclass(frozen=True)
class LiveConfig:
    backend: str = "auto"
    in_port: str | None = None
    out_port: str | None = None
    bpm: float = 120.0
    meter: Meter = Meter()
    style: str = "default"
    channel: int = 0  # output channel 0..15
    passthrough: bool = False
    record: str | None = None
    params: SessionParams = SessionParams()
    cc_map: tuple[tuple[int, str], ...] = ((21, "temperature"), (22, "top_p"), (23, "mode"))
    seed: int | None = None
    device: str = "auto"  # where planned answers are computed: auto (CUDA when present), cpu or cuda


@dataclass(frozen=True)
class LiveSnapshot:
    clock: ClockSnapshot
    session: SessionSnapshot
    sender: SenderStats
    params: SessionParams
    style: str
    received: int
    dropped_inbox: int
    malformed: int
    step_ms_p99: float
    recording: str | None
    cc_map: dict
    learning: str | None
    ports: tuple[str, str]
    backend: str
    errors: tuple[str, ...] = ()
    reflexes: int = 0  # player's notes the port layer answered at once with the armed reaction


class Controls:
    """The thread-safe interface for parameters and commands (panel, CLI, MIDI CC)."""

    def __init__(self, params: SessionParams, cc_map: dict[int, str]):
        self._lock = threading.Lock()
        self._params = params.validated()
        self._cc_map = dict(cc_map)
        self._learning: str | None = None
        self.commands: queue.SimpleQueue = queue.SimpleQueue()
        self.version = 0

    @property
    def params(self) -> SessionParams:
        return self._params

    def update(self, **changes) -> SessionParams:
        with self._lock:
            self._params = replace(self._params, **changes).validated()
            self.version += 1
            return self._params

    def panic(self) -> None:
        self.commands.put(("panic",))

    def set_style(self, name: str) -> None:
        self.commands.put(("style", name))

    def set_passthrough(self, on: bool) -> None:
        self.commands.put(("passthrough", bool(on)))

    def set_channel(self, channel: int) -> None:
        self.commands.put(("channel", int(channel)))

    def record(self, path: str | None) -> None:
        self.commands.put(("record", path))

    def learn(self, target: str | None) -> None:
        """The next CC received drives `target` (one of LEARNABLE); None cancels."""
        if target is not None and target not in LEARNABLE:
            raise ValueError(f"cannot learn {target!r}; learnable: {LEARNABLE}")
        with self._lock:
            self._learning = target

    @property
    def learning(self) -> str | None:
        return self._learning

    @property
    def cc_map(self) -> dict[int, str]:
        return dict(self._cc_map)

    def bind(self, cc: int, target: str) -> None:
        with self._lock:
            self._cc_map = {k: v for k, v in self._cc_map.items() if v != target}
            self._cc_map[cc] = target
            self._learning = None
            self.version += 1

    def apply_cc(self, cc: int, value: int) -> str | None:
        """Learn or apply a CC; returns the command it triggers ('panic') if any."""
        if self._learning is not None:
            self.bind(cc, self._learning)
            return None
        target = self._cc_map.get(cc)
        if target == "temperature":
            self.update(temperature=0.1 + 1.9 * value / 127)
        elif target == "top_p":
            self.update(top_p=0.05 + 0.95 * value / 127)
        elif target == "response_bars":
            self.update(response_bars=1 + value * 15 // 127)
        elif target == "mode":
            self.update(mode=ACCOMPANY if value >= 64 else CALL_RESPONSE)
        elif target == "panic" and value >= 64:
            return "panic"
        return None


def planning_device(device: str) -> str:
    if device != "auto":
        return device
    import torch

    return "cuda" if torch.cuda.is_available() else "cpu"


class LiveEngine:
    def __init__(self, config: LiveConfig, runtime: StepRuntime | None = None, style_name: str | None = None):
        self.config = config
        self.meter = config.meter
        if runtime is None:
            style = load_style(config.style)
            runtime, style_name = style.runtime(), style.name
        self.style_name = style_name or config.style
        self.controls = Controls(config.params, dict(config.cc_map))
        self.clock = ClockFollower(internal_bpm=config.bpm)
        self.session = Session(runtime, self.meter, self.controls.params, seed=config.seed,
                               device=planning_device(config.device))
        self.channel = config.channel
        self.passthrough = config.passthrough
        self._inbox: deque = deque()
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._dropped_inbox = 0
        self._received = 0
        self._stale_note_ons = 0  # note-ons from before a transport move, handled after it: not played
        self._malformed = 0
        self._reflex_id = 0
        self._reflex_tables: dict = {}  # id -> Reflexes, the latest armed (a note may name one just replaced)
        self._armed = None  # (Reflexes, (epoch, first ordinal, last ordinal), channel) armed in the port layer
        self.reflexes_heard = 0  # player's notes the port layer answered with an armed reaction
        self._interrupt_armed: int | None = None  # the transport epoch the port layer's interruption is armed for
        self.interrupted_in_port_layer = 0  # answers the port layer ended at the player's note
        self._step_ms: deque = deque(maxlen=2000)
        self._params_version = -1
        self._snapshot: LiveSnapshot | None = None
        self._published = 0.0
        self._errors: deque = deque(maxlen=8)
        self.recorder: Recorder | None = None
        self.record_path: str | None = None
        self.sender: IOProcess | None = None
        self.in_name = self.out_name = ""
        self.backend = config.backend
        self._threads: list[threading.Thread] = []
        self._relocations = 0  # the clock's Start/Continue count the engine has acted on
        self._shipped_styles = shipped_styles()  # what a Program Change selects from (read once, not per message)
        # what the recording needs to place a sent message: the stream tick each tag was scheduled
        # for, and where the stream stood when (samples of the engine thread's clock)
        self._tags = itertools.count(FIRST_TAG)
        self._tag_ticks: dict[int, tuple[int, bool]] = {}  # tag -> (stream tick, queued for that tick's 0xF8)
        # messages queued for a 0xF8 that went out after it (handed over late, or their 0xF8 never arrived)
        self.after_their_tick = 0
        self.after_their_tick_ons = 0
        self.after_their_tick_worst_ms = 0.0
        self.after_their_tick_ons_at: deque[tuple[int, float]] = deque(maxlen=64)  # (sample frame, ms after)
        self._timeline: deque = deque(maxlen=4096)  # (perf time, stream tick, running, period)
        self._timeline_lock = threading.Lock()

    # ------------------------------------------------------------------ lifecycle
    def start(self) -> "LiveEngine":
        from .ports import _register, resolve_backend

        from threadpoolctl import threadpool_limits

        # the per-event step is a few matrix-vector products: BLAS threads only add wake-ups, and on a
        # machine busy with a DAW they made one step 40x slower (0.34 -> 13 ms measured while training)
        threadpool_limits(1, user_api="blas")
        import torch

        torch.set_num_threads(1)  # likewise a style's load and replay (torch): a second core is the DAW's and JACK's
        backend = resolve_backend(self.config.backend)
        # both ports live in the I/O process (no GIL shared with the model); it first releases whatever a
        # previous run killed hard may have left sounding
        self.sender = IOProcess(backend, self.config.in_port, self.config.out_port, release_channels=(self.channel,),
                                on_input=self._on_input, on_sent=self._on_sent)
        self.in_name, self.out_name, self.backend = self.sender.in_name, self.sender.name, backend
        self.session.emit = self._send_at_once  # an accompaniment note reacting to the player goes out now
        self.session.send_ahead = self._apply  # a planned answer's first notes, queued for their ticks at once
        self.session.input_waiting = self._input_waiting  # generating ahead gives way to the player's note
        # the reader thread hands the player's notes over while the engine thread steps the model: it must get
        # the GIL within half a millisecond, not Python's default 5
        sys.setswitchinterval(min(sys.getswitchinterval(), GIL_SWITCH_S))
        _register(backend, self.out_name)
        _register(backend, self.in_name)
        self.clock.start()
        if self.config.record:
            self._start_recording(self.config.record)
        self._spawn(self._engine_loop, "antiphon-engine")
        self._spawn(self._recorder_loop, "antiphon-recorder")
        return self

    def _spawn(self, target, name: str) -> None:
        t = threading.Thread(target=target, name=name, daemon=True)
        t.start()
        self._threads.append(t)

    def close(self) -> None:
        """Every stop path ends here: note-offs for every sounding note, CC 123, ports closed."""
        if self._stop.is_set():
            return
        self._stop.set()
        self._wake.set()
        for t in self._threads:
            t.join(timeout=2.0)
        if self.sender is not None:
            self.sender.close()  # its last messages (the release) reach the recording before it goes
        if self.recorder is not None and self.record_path:
            self._save_recording()

    def ports_lost(self) -> str | None:
        """Why nothing can go out any more, or None while the ports work: the JACK server stopped, or the I/O
        process ended."""
        io = self.sender
        if io is None or self._stop.is_set():
            return None
        if io.stats().server_gone:
            return "the JACK server stopped (it shut Antiphon's client down)"
        if not io.alive:
            return "the I/O process ended"
        return None

    @classmethod
    def started(cls, config: LiveConfig, factory=None) -> "LiveEngine":
        """A started engine, or the reason it could not start (everything it opened closed again)."""
        engine = (factory or cls)(config)
        try:
            engine.start()
        except Exception:
            engine.close()
            raise
        return engine

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.close()

    # ------------------------------------------------------------------ the I/O process's reader thread
    def _on_input(self, events) -> None:
        """[(time, message, 0xF8 ordinal, transport epoch, frame[, reflex table])]: clock to the follower,
        notes and CCs to the inbox. Times are the driver's, so it does not matter when this thread gets to run."""
        wake = False
        for t, msg, ordinal, epoch, frame, *reflex in events:
            if not message_ok(msg):
                self._malformed += 1
                continue
            status = msg[0]
            if status in (CLOCK, START, CONTINUE, STOP, SONG_POSITION):
                self.clock.feed(status, msg[1:], t, ordinal, epoch, frame)
                wake = wake or status != CLOCK
            elif (status & 0xF0 in (0x80, 0x90, 0xB0) and len(msg) == 3
                  or status & 0xF0 == PROGRAM_CHANGE and len(msg) == 2):
                self._enqueue(msg, t, ordinal, epoch, frame, reflex[0] if reflex else 0)
                wake = True
        if wake:
            self._wake.set()

    def _input_waiting(self) -> bool:
        return bool(self._inbox)

    def _enqueue(self, msg: bytes, t: float, ordinal: int | None = None, epoch: int | None = None,
                 frame: int | None = None, reflex: int = 0) -> None:
        if len(self._inbox) >= INBOX_LIMIT and not must_keep(msg):
            self._dropped_inbox += 1
            return
        self._inbox.append((msg, t, ordinal, epoch, frame, reflex))

    def _on_sent(self, messages) -> None:
        """[(time, message, tag, ordinal, at once, frame)] as written to Antiphon Out: the answer's recording, each
        message where it went out: with the 0xF8 it was queued for (its tag's tick), with another 0xF8 (a
        note-off the I/O layer added at a cut: that ordinal's tick), or at once (after the `ordinal`th 0xF8, by
        its sample frame where the I/O layer stamps one, else by its time; without a count, where the stream
        stood then). A message whose 0xF8 never arrived went out with the next one: at once, on that tick.
        What was queued for a 0xF8 and went out after it is counted, with how late."""
        rec = self.recorder
        for t, msg, tag, ordinal, at_once, frame in messages:
            if tag == PASSTHROUGH_TAG:
                continue
            meant, by_tick = self._tag_ticks.pop(tag, (None, False))
            if meant is not None and not at_once:
                tick = meant
            elif self.clock.tick_of(ordinal) is None:
                tick = self._stream_tick_at(t)
            elif at_once:
                tick = self.clock.tick_for(t, ordinal, frame=frame) + self.session.offset
            else:
                tick = self.clock.tick_of(ordinal) + self.session.offset
            if by_tick and at_once:
                self._count_after_tick(tick - meant, msg, frame)
            if rec is not None:
                rec.add("antiphon", tick, msg)

    def _count_after_tick(self, ticks: float, msg: bytes, frame: int | None) -> None:
        ms = max(ticks, 0.0) * 60_000.0 / (self.clock.bpm * 24)
        self.after_their_tick += 1
        self.after_their_tick_worst_ms = max(self.after_their_tick_worst_ms, ms)
        if msg[0] & 0xF0 == 0x90 and msg[2] > 0:
            self.after_their_tick_ons += 1
            if frame is not None:
                self.after_their_tick_ons_at.append((frame, ms))

    def _stream_tick_at(self, t: float) -> float:
        """The stream tick (song tick + the session's offset) at perf_counter() time `t`."""
        with self._timeline_lock:
            samples = list(self._timeline)
        if not samples:
            return float(self.session._now)
        i = bisect.bisect_right(samples, (t, float("inf"))) - 1
        st, tick, running, period = samples[max(i, 0)]
        return tick + (t - st) / period if running and i >= 0 else tick

    def _new_tag(self, stream_tick: int, by_tick: bool = False) -> int:
        tag = next(self._tags) & 0xFFFFFFFF
        if tag < FIRST_TAG:  # wrapped after four billion messages
            self._tags = itertools.count(FIRST_TAG)
            tag = next(self._tags)
        if len(self._tag_ticks) > 100_000:  # tags of withdrawn messages never come back: forget the oldest
            for old in list(itertools.islice(self._tag_ticks, 50_000)):
                del self._tag_ticks[old]
        self._tag_ticks[tag] = (stream_tick, by_tick)
        return tag

    # ------------------------------------------------------------------ engine thread
    def _engine_loop(self) -> None:
        running = False
        while not self._stop.is_set():
            self._wake.wait(0.002)
            self._wake.clear()
            try:
                running = self._engine_iteration(running)
            except Exception as exc:  # the engine must survive anything: release, report, go on
                self._errors.append(f"{type(exc).__name__}: {exc}")
                self.sender.panic()
                try:
                    self.session.stop()
                except Exception:
                    pass

    def _engine_iteration(self, was_running: bool) -> bool:
        now = time.perf_counter()
        self._run_commands()
        if self.controls.version != self._params_version:
            self._params_version = self.controls.version
            self.session.set_params(self.controls.params)
        running = self.clock.poll(now)
        relocations = self.clock.relocations
        jumped = relocations != self._relocations
        self._relocations = relocations
        if was_running and running and jumped:
            # Start, or Stop+Continue, while rolling (a DAW locating or looping; both can land within one
            # poll, so `running` never reads False): the song position jumped under notes scheduled on the
            # old timeline. Release what sounds now (note-offs, no CC 123: loops would fill recordings
            # with it) and start over at the new position.
            self.session.stop()
            self.sender.cancel_pending(release_now=True)
            self.session.locate(self.clock.tick_at(now))
        elif was_running and not running:
            self._apply(self.session.stop())
            self.sender.panic()
        elif running and not was_running:
            self._apply(self.session.locate(self.clock.tick_at(now)))
        for _ in range(len(self._inbox)):
            self._handle_input(*self._inbox.popleft())
        if self.session.wants_style_replay():  # a new style hears the stream on a thread of its own
            switch = self.session.prepare_style()
            self._spawn(lambda: self._replay_style(switch), "antiphon-style-replay")
        if running:
            t0 = time.perf_counter()
            self._apply(self.session.advance(self.clock.tick_at(time.perf_counter()), budget_s=PLAN_SLICE_S,
                                             tick_s=self.clock.period))
            self._step_ms.append((time.perf_counter() - t0) * 1000)
            if self.recorder is not None:
                self.recorder.tempo(self.session._now, self.clock.bpm)
        self._arm_reflexes(running)
        self._arm_interrupt(running)
        self._sample_timeline()
        if now - self._published >= 0.03:
            self._publish()
        return running

    def _arm_reflexes(self, running: bool) -> None:
        """The accompaniment's reaction to the player's next note, armed in the port layer (where it can
        play it at the note itself): chosen again whenever the stream ahead changes, disarmed when there is
        nothing to arm or the ordinals of its ticks are not known (internal clock, no stamps)."""
        if not self.sender.supports_reflexes:
            return
        table = self.session.reflexes() if running else None
        where = None
        if table is not None:
            offset = self.session.offset
            first, last = self.clock.ordinal_of(table.first_tick - offset), self.clock.ordinal_of(table.last_tick - offset)
            if first is not None and last is not None and first[0] == last[0]:
                # a note after 0xF8 number k is at tick k, or at k + 1 past the middle of the tick (rounded)
                where = (first[0], first[1] - 1, last[1])
        if where is None:
            if self._armed is not None:
                self.sender.arm_reflexes(0, 0, 0, 0, {})
                self._armed = None
            return
        ch = self.channel
        if self._armed is not None and self._armed == (table, where, ch):
            return
        self._reflex_id = self._reflex_id % 0xFFFFFFFE + 1  # (0xFFFFFFFF: the interruption)
        reactions = {p: [bytes([(0x90 if v else 0x80) | ch, q, v]) for q, v in r] for p, r in table.reactions.items() if r}
        self.sender.arm_reflexes(self._reflex_id, where[0], where[1], where[2], reactions)
        self._reflex_tables[self._reflex_id] = table
        while len(self._reflex_tables) > REFLEX_TABLES_KEPT:
            del self._reflex_tables[next(iter(self._reflex_tables))]
        self._armed = (table, where, ch)

    def _arm_interrupt(self, running: bool) -> None:
        """While an answer plays on MIDI clock, in call and response, the port layer ends it at the player's
        next note-on itself (in that note's JACK cycle), without waiting for this thread to finish a step."""
        where = self.clock.ordinal_of(0) if running else None
        want = where[0] if where is not None and self.session.answer_sounding else None
        if want != self._interrupt_armed:
            self.sender.arm_interrupt(want if want is not None else 0, want is not None)
            self._interrupt_armed = want

    def _sample_timeline(self) -> None:
        t = time.perf_counter()
        clock = self.clock
        sample = (t, clock.tick_at(t) + self.session.offset, clock.poll(t), clock.period)
        with self._timeline_lock:
            self._timeline.append(sample)

    def _handle_input(self, data: bytes, t: float, ordinal: int | None = None, epoch: int | None = None,
                      frame: int | None = None, reflex: int = 0) -> None:
        """`reflex`: the id of the armed table whose reaction the port layer played at this note (0: none)."""
        self._received += 1
        kind = data[0] & 0xF0
        if kind == 0x90 and data[2] > 0 and self.clock.is_stale(epoch):
            # played before the transport moved, handled after it (a backlog): the song jumped and the session
            # let go of the old timeline's notes; starting this one now would hold it on the new one for ever
            self._stale_note_ons += 1
            return
        if kind == PROGRAM_CHANGE:  # a DAW's patch change: the shipped style of that number, from the next phrase
            names = self._shipped_styles
            if data[1] < len(names) and names[data[1]] != self.style_name:
                self.controls.set_style(names[data[1]])
            return
        tick = self.clock.tick_for(t, ordinal, epoch, frame)
        if kind == 0xB0:
            if self.controls.apply_cc(data[1], data[2]) == "panic":
                self._panic()
            self._apply(self.session.control_change(tick, data[1], data[2]))
            return
        if self.passthrough:
            self.sender.send_now(bytes([kind | self.channel]) + data[1:], PASSTHROUGH_TAG)
        if self.recorder is not None:
            self.recorder.add("player", tick + self.session.offset, data)
        if kind == 0x90 and data[2] > 0:
            if reflex == INTERRUPTED_ANSWER:  # the port layer ended the answer at this note, and disarmed
                self.interrupted_in_port_layer += 1
                self._interrupt_armed, reflex = None, 0
            table = self._reflex_tables.get(reflex) if reflex else None
            if self._armed is not None and reflex == self._reflex_id:
                self._armed = None  # the port layer disarmed it on playing it: the next one is armed afresh
            if table is not None:
                self.reflexes_heard += 1
            reaction = table.reactions.get(data[1], ()) if table is not None else None
            self._apply(self.session.note_on(tick, data[1], data[2], reflex=reaction))
        else:
            self._apply(self.session.note_off(tick, data[1]))

    def _send_at_once(self, note) -> None:
        """The session's hook (engine thread): a note chosen in reaction to the player, sent before the model
        steps on. The recording places it where it went out."""
        msg = bytes([(0x90 if note.velocity else 0x80) | self.channel, note.pitch, note.velocity])
        self.sender.send_now(msg, self._new_tag(note.tick))

    def _apply(self, out) -> None:
        """Session output -> the I/O process.

        On MIDI clock a note is queued for the 0xF8 of its tick (by the I/O layer's count of them) and
        goes out with that 0xF8, so it sits on the master's tick whatever the tick<->time map says: notes
        are generated up to `lookahead_beats` ahead, and a deadline fixed that early misses the tick by
        (lookahead x tempo error) -- 5-8 ms at 140 BPM with a 1 % error. On the internal clock the map
        is exact and notes are scheduled at its deadlines."""
        offset = self.session.offset
        clock = self.clock
        if out.cancel_from is not None:
            cut = out.cancel_from - offset
            where = clock.ordinal_of(cut)
            if where is not None:
                self.sender.cancel_ticks_from(*where)
            self.sender.cancel_from(clock.time_of(cut))
        ch = self.channel
        on_ticks, at_times = [], []
        for n in out.notes:
            msg = bytes([(0x90 if n.velocity else 0x80) | ch, n.pitch, n.velocity])
            where = clock.ordinal_of(n.tick - offset)
            if where is not None:
                on_ticks.append((where[0], where[1], msg, self._new_tag(n.tick, by_tick=True)))
            else:
                at_times.append((clock.time_of(n.tick - offset), msg))
        if on_ticks:
            self.sender.at_tick_many(on_ticks)
        if at_times:
            self.sender.schedule_many(at_times)

    def _run_commands(self) -> None:
        while True:
            try:
                cmd = self.controls.commands.get_nowait()
            except queue.Empty:
                return
            if cmd[0] == "panic":
                self._panic()
            elif cmd[0] == "style":
                self._spawn(lambda name=cmd[1]: self._load_style(name), "antiphon-style-loader")
            elif cmd[0] == "style_loaded":
                self.session.set_runtime(cmd[1])
                self.style_name = cmd[2]
            elif cmd[0] == "style_replayed":
                self.session.adopt_style(cmd[1])  # False: the stream went back meanwhile; replayed again
            elif cmd[0] == "passthrough":
                self.passthrough = cmd[1]
            elif cmd[0] == "channel":
                self.sender.panic()
                self.channel = max(0, min(15, cmd[1]))
            elif cmd[0] == "record":
                self._start_recording(cmd[1]) if cmd[1] else self._stop_recording()

    def _panic(self) -> None:
        self._apply(self.session.release_all(self.session._now))
        self.sender.panic()

    def _replay_style(self, switch) -> None:
        """Runs on its own thread: the new style's forward pass over the recent stream; the engine thread
        adopts it (stepping only what was played meanwhile)."""
        _yield_to_the_engine()
        try:
            switch.run()
        except Exception as exc:
            self._errors.append(f"style replay: {type(exc).__name__}: {exc}")
            return
        self.controls.commands.put(("style_replayed", switch))
        self._wake.set()

    def _load_style(self, name: str) -> None:
        """Runs on its own thread: the disk and the weight refolding never touch the engine thread."""
        _yield_to_the_engine()
        try:
            style = load_style(name)
            self.controls.commands.put(("style_loaded", style.runtime(), style.name))
            self._wake.set()
        except Exception as exc:
            self._errors.append(f"style {name!r}: {exc}")

    # ------------------------------------------------------------------ recording
    def _start_recording(self, path: str) -> None:
        self.recorder = Recorder(self.meter, self.clock.bpm, channels=(0, 1))
        self.record_path = str(path)

    def _stop_recording(self) -> None:
        if self.recorder is not None:
            self._save_recording()
        self.recorder, self.record_path = None, None

    def _save_recording(self) -> None:
        rec, path = self.recorder, self.record_path
        if rec is None or not path:
            return
        try:
            rec.save(path)
        except OSError as exc:
            self._errors.append(f"recording {path}: {exc}")

    def _recorder_loop(self) -> None:
        while not self._stop.wait(1.0):
            self._save_recording()

    # ------------------------------------------------------------------ readers
    def snapshot(self) -> LiveSnapshot:
        """The latest state, published by the engine thread every ~30 ms (safe from any thread)."""
        if self._snapshot is None:
            self._publish()
        return self._snapshot

    def _publish(self) -> None:
        self._published = time.perf_counter()
        steps = sorted(self._step_ms)
        p99 = steps[min(len(steps) - 1, int(len(steps) * 0.99))] if steps else 0.0
        st = self.sender.stats() if self.sender is not None else SenderStats(0, 0, 0, 0, 0.0, 0.0, 0.0, 0.0, 0)
        snap = LiveSnapshot(
            clock=self.clock.snapshot(meter=self.meter), session=self.session.snapshot(),
            sender=st, params=self.controls.params, style=self.style_name,
            received=self._received, dropped_inbox=self._dropped_inbox + st.in_dropped,
            malformed=self._malformed, step_ms_p99=p99, recording=self.record_path,
            cc_map=self.controls.cc_map, learning=self.controls.learning,
            ports=(self.in_name, self.out_name), backend=self.backend, errors=tuple(self._errors),
            reflexes=self.reflexes_heard)
        self._snapshot = snap


def _yield_to_the_engine() -> None:
    """This thread (a style's load or replay) runs at a lower priority than the engine thread: on a machine whose
    other core is busy, a second of loading must not take the engine's beat (Linux: per-thread nice)."""
    try:
        os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), 10)
    except (AttributeError, OSError):
        pass


def exit_lines(engine: "LiveEngine") -> list[str]:
    """What `antiphon live` prints as it stops: what went out, and where the clock's 0xF8s never arrived (sample
    frames of the server, where the I/O layer stamps them: another client's recording tells whether the master
    sent them at all)."""
    st = engine.sender.stats()
    lines = [f"stopped: {st.sent} messages sent, {st.sounding} notes left sounding, "
             f"worst lateness {st.late_worst_ms:.2f} ms"]
    if engine.after_their_tick:
        lines.append(f"after their tick: {engine.after_their_tick} messages queued for a 0xF8 went out after it "
                     f"({engine.after_their_tick_ons} note-ons), the worst {engine.after_their_tick_worst_ms:.2f} ms"
                     + "".join(f"; a note-on at frame {f}, {ms:.2f} ms" for f, ms in engine.after_their_tick_ons_at))
    spans = engine.clock.lost_where()
    if spans:
        lines.append(f"clock: {sum(n for *_, n in spans)} 0xF8 never arrived, between frames "
                     + ", ".join(f"{a}-{b}" + (f" (x{n})" if n > 1 else "") for a, b, n in spans))
    return lines


def status_line(s: LiveSnapshot) -> str:
    c, ss, st = s.clock, s.session, s.sender
    transport = "playing" if c.running else "stopped"
    return (f"{c.bpm:6.1f} BPM {c.source:8s} {transport:7s} {c.bar:4d}:{c.beat} | {ss.mode:13s} {ss.state:9s} "
            f"key {ss.key:9s} | T {s.params.temperature:.2f} | step {ss.step_ms:5.2f} ms | "
            f"late now {st.late_current_ms:5.2f} p99 {st.late_p99_ms:5.2f} worst {st.late_worst_ms:5.2f} ms | "
            f"in {s.received} out {st.sent} drop {s.dropped_inbox + st.dropped} | "
            f"clock {c.ticks} ticks, {c.lost_ticks} lost"
            + (f" ({st.lost_ticks_here} in cycles Antiphon did not run)" if st.lost_ticks_here >= 0 else "")
            + f" | late for their tick {st.late_ticks} | "
            f"style {s.style}, plans cut at the beat {ss.plans_cut}"
            + (f" | answered at the note {s.reflexes}" if ss.mode == "accompany" else ""))
