"""The live runner: ports, clock, engine thread, sender, recorder. The one place where threads meet.

    MIDI input thread ──clock messages──▶ ClockFollower            (fed directly: timing matters)
                     └─notes, CCs──▶ bounded inbox ──▶ engine thread: Session ─▶ TimedSender thread
    recorder thread: saves the recording once a second                        ─▶ Antiphon Out
    anyone (panel, CLI, CC): Controls (parameters, commands) ─▶ engine thread; snapshot() ◀─ anyone

The engine thread never waits on the panel, the disk or a style load; the panel only reads
`snapshot()` and writes through `Controls`.
"""
from __future__ import annotations

import heapq
import itertools
import queue
import threading
import time
from collections import deque
from dataclasses import dataclass, replace

from antiphon.engine.events import Meter
from antiphon.engine.recorder import Recorder
from antiphon.engine.runtime import StepRuntime
from antiphon.engine.session import ACCOMPANY, CALL_RESPONSE, Session, SessionParams, SessionSnapshot
from antiphon.engine.style import load_style

from .clock import CLOCK, CONTINUE, SONG_POSITION, START, STOP, ClockFollower, ClockSnapshot
from .sender import SenderStats, TimedSender, release_every_note
from .sender_process import ProcessSender

INBOX_LIMIT = 4096
LEARNABLE = ("temperature", "top_p", "mode", "response_bars", "panic")


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
    sender: str = "process"  # "process" (default: immune to the model's GIL use) or "thread"


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
        self.session = Session(runtime, self.meter, self.controls.params, seed=config.seed)
        self.channel = config.channel
        self.passthrough = config.passthrough
        self._inbox: deque = deque()
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._dropped_inbox = 0
        self._received = 0
        self._step_ms: deque = deque(maxlen=2000)
        self._params_version = -1
        self._snapshot: LiveSnapshot | None = None
        self._published = 0.0
        self._errors: deque = deque(maxlen=8)
        self.recorder: Recorder | None = None
        self.record_path: str | None = None
        self.inp = self.out = self.sender = None
        self.out_name = ""
        self._threads: list[threading.Thread] = []
        # notes on MIDI clock wait here (song tick, seq, message) until their 0xF8 arrives
        self._pending: list[tuple[int, int, bytes]] = []
        self._pending_lock = threading.Lock()
        self._pending_seq = itertools.count()
        self._relocations = 0  # the clock's Start/Continue count the engine has acted on

    # ------------------------------------------------------------------ lifecycle
    def start(self) -> "LiveEngine":
        from .ports import _register, open_input, resolve_backend

        from threadpoolctl import threadpool_limits

        # the per-event step is a few matrix-vector products: BLAS threads only add wake-ups, and on a
        # machine busy with a DAW they made one step 40x slower (0.34 -> 13 ms measured while training)
        threadpool_limits(1, user_api="blas")
        backend = resolve_backend(self.config.backend)
        if self.config.sender == "process":
            # the sender owns the output port in a process of its own (no GIL shared with the model);
            # it first releases whatever a previous run killed hard may have left sounding
            self.sender = ProcessSender(backend, self.config.out_port, release_channels=(self.channel,))
            self.out_name = self.sender.name
            _register(backend, self.out_name)
        else:
            from .ports import open_output

            self.out = open_output(backend, self.config.out_port)
            self.out_name = self.out.name
            release_every_note(self.out.send_message, (self.channel,))
            self.sender = TimedSender(self.out)
        self.inp = open_input(backend, self.config.in_port, callback=self._on_midi)
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
        if self.inp is not None:
            self.inp.close()
        if self.sender is not None:
            self.sender.close()
        if self.recorder is not None and self.record_path:
            self._save_recording()
        if self.out is not None:
            self.out.close()

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

    # ------------------------------------------------------------------ MIDI input thread
    def _on_midi(self, data: bytes, t: float) -> None:
        status = data[0]
        if status in (CLOCK, START, CONTINUE, STOP, SONG_POSITION):
            self.clock.feed(status, data[1:], t)
            if status == CLOCK:
                self._release_due(self.clock.last_tick)
            else:
                self._wake.set()
            return
        kind = status & 0xF0
        if kind in (0x80, 0x90, 0xB0) and len(data) == 3:
            if len(self._inbox) >= INBOX_LIMIT:
                self._dropped_inbox += 1
                return
            self._inbox.append((data, t))
            self._wake.set()

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
                self._clear_pending()
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
            ended = self.session.stop()
            if self.recorder is not None:
                for n in ended.notes:
                    self.recorder.add("antiphon", n.tick, bytes([0x80 | self.channel, n.pitch, 0]))
            self._clear_pending()
            self.sender.cancel_pending(release_now=True)
            self.session.locate(self.clock.tick_at(now))
        elif was_running and not running:
            self._apply(self.session.stop())
            self._clear_pending()
            self.sender.panic()
        elif running and not was_running:
            self._apply(self.session.locate(self.clock.tick_at(now)))
        for _ in range(len(self._inbox)):
            data, t = self._inbox.popleft()
            self._handle_input(data, t)
        if running:
            t0 = time.perf_counter()
            self._apply(self.session.advance(self.clock.tick_at(time.perf_counter())))
            self._step_ms.append((time.perf_counter() - t0) * 1000)
            if self.recorder is not None:
                self.recorder.tempo(self.session._now, self.clock.bpm)
        if now - self._published >= 0.03:
            self._publish()
        return running

    def _handle_input(self, data: bytes, t: float) -> None:
        self._received += 1
        kind = data[0] & 0xF0
        tick = self.clock.tick_at(t)
        if kind == 0xB0:
            if self.controls.apply_cc(data[1], data[2]) == "panic":
                self._panic()
            self._apply(self.session.control_change(tick, data[1], data[2]))
            return
        if self.passthrough:
            self.sender.send_now(bytes([kind | self.channel]) + data[1:])
        if self.recorder is not None:
            self.recorder.add("player", tick + self.session.offset, data)
        if kind == 0x90 and data[2] > 0:
            self._apply(self.session.note_on(tick, data[1], data[2]))
        else:
            self._apply(self.session.note_off(tick, data[1]))

    def _apply(self, out) -> None:
        """Session output -> the sender (and the recording).

        On MIDI clock a note waits in `_pending` until the 0xF8 of its tick arrives and goes out from
        the input thread right then (`_release_due`), so it sits on the master's tick whatever the
        tick<->time map says: notes are generated up to `lookahead_beats` ahead, and a deadline fixed
        that early misses the tick by (lookahead x tempo error) -- 5-8 ms at 140 BPM with a 1 % error.
        On the internal clock the map is exact and notes are scheduled at its deadlines."""
        offset = self.session.offset
        if out.cancel_from is not None:
            self._cancel_pending(out.cancel_from - offset)
            self.sender.cancel_from(self.clock.time_of(out.cancel_from - offset))
        ch = self.channel
        for n in out.notes:
            msg = bytes([(0x90 if n.velocity else 0x80) | ch, n.pitch, n.velocity])
            if not self._defer(n.tick - offset, msg):
                self.sender.schedule(self.clock.time_of(n.tick - offset), msg)
            if self.recorder is not None:
                self.recorder.add("antiphon", n.tick, msg)

    def _defer(self, tick: int, msg: bytes) -> bool:
        """Queue `msg` for the 0xF8 of `tick` if MIDI clock runs and that tick has not arrived yet."""
        if self.clock.source != "midi" or not self.clock.running:
            return False
        with self._pending_lock:
            last = self.clock.last_tick
            if last is not None and tick <= last:
                return False
            heapq.heappush(self._pending, (int(tick), next(self._pending_seq), msg))
            return True

    def _release_due(self, tick: int | None) -> None:
        """Input thread, on each 0xF8: send what waits for this tick (or an earlier one)."""
        if tick is None:
            return
        with self._pending_lock:
            due = []
            while self._pending and self._pending[0][0] <= tick:
                due.append(heapq.heappop(self._pending)[2])
        for msg in due:
            self.sender.send_now(msg)

    def _cancel_pending(self, tick: int) -> None:
        """Drop waiting events at `tick` or later; a note that would still sound there ends there."""
        with self._pending_lock:
            keep, dropped_offs = [], set()
            for item in sorted(self._pending):
                if item[0] < tick:
                    keep.append(item)
                elif item[2][0] & 0xF0 == 0x80 or item[2][2] == 0:
                    dropped_offs.add((item[2][0] & 0x0F, item[2][1]))
            sounding = set()
            for _, _, msg in keep:
                key = (msg[0] & 0x0F, msg[1])
                if msg[0] & 0xF0 == 0x90 and msg[2] > 0:
                    sounding.add(key)
                else:
                    sounding.discard(key)
            for ch, pitch in sorted(sounding | dropped_offs):
                keep.append((int(tick), next(self._pending_seq), bytes([0x80 | ch, pitch, 0])))
            heapq.heapify(keep)
            self._pending = keep

    def _clear_pending(self) -> None:
        with self._pending_lock:
            self._pending = []

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
            elif cmd[0] == "passthrough":
                self.passthrough = cmd[1]
            elif cmd[0] == "channel":
                self._clear_pending()
                self.sender.panic()
                self.channel = max(0, min(15, cmd[1]))
            elif cmd[0] == "record":
                self._start_recording(cmd[1]) if cmd[1] else self._stop_recording()

    def _panic(self) -> None:
        self._apply(self.session.release_all(self.session._now))
        self._clear_pending()
        self.sender.panic()

    def _load_style(self, name: str) -> None:
        """Runs on its own thread: the disk and the weight refolding never touch the engine thread."""
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
        snap = LiveSnapshot(
            clock=self.clock.snapshot(meter=self.meter), session=self.session.snapshot(),
            sender=self.sender.stats(), params=self.controls.params, style=self.style_name,
            received=self._received, dropped_inbox=self._dropped_inbox,
            malformed=self.inp.malformed if self.inp else 0, step_ms_p99=p99, recording=self.record_path,
            cc_map=self.controls.cc_map, learning=self.controls.learning,
            ports=(self.inp.name if self.inp else "", self.out_name),
            backend=self.inp.backend if self.inp else self.config.backend, errors=tuple(self._errors))
        self._snapshot = snap


def status_line(s: LiveSnapshot) -> str:
    c, ss, st = s.clock, s.session, s.sender
    transport = "playing" if c.running else "stopped"
    return (f"{c.bpm:6.1f} BPM {c.source:8s} {transport:7s} {c.bar:4d}:{c.beat} | {ss.mode:13s} {ss.state:9s} "
            f"key {ss.key:9s} | T {s.params.temperature:.2f} | step {ss.step_ms:5.2f} ms | "
            f"late now {st.late_current_ms:5.2f} p99 {st.late_p99_ms:5.2f} worst {st.late_worst_ms:5.2f} ms | "
            f"in {s.received} out {st.sent} drop {s.dropped_inbox + st.dropped}")
