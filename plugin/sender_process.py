"""The I/O process: both MIDI ports, in a process of its own, so the model's Python never holds its GIL.

    engine process                                      I/O process (this module's _child)
    ──────────────                                      ──────────────────────────────────
    IOProcess.at_tick/schedule/send_now/panic ─control▶ commands ─▶ port layer ─▶ Antiphon Out
    on_input(events) ◀── reader thread ◀──────events─── forwarder ◀── port layer ◀── Antiphon In
                                                         (woken by each received note or controller)
    on_sent(messages) ◀─┘                                (every message written, with its time)

The port layer is Antiphon's own JACK client (plugin/jack_native.py: one client, both ports, a C
process callback that sends what waits for a 0xF8 in the same cycle, at the same frame) or, where it
cannot be built and for ALSA and CoreMIDI, python-rtmidi polled every half millisecond by a thread here
(plugin/polled_io.py). Every input message reaches the engine with its driver time stamp, its 0xF8
ordinal and its transport epoch; every message written comes back with its time and the tag the
engine gave it (the recording is what was sent). Messages due at perf_counter() deadlines (the
internal clock) go out from a TimedSender thread here. Deadlines are time.perf_counter() values,
which on Linux and macOS read the same monotonic clock in every process.

The child watches the control pipe: if the engine process dies, even by SIGKILL, the pipe closes and
the child releases every sounding note (note-offs, CC 64=0, CC 123) before it exits. It ignores
SIGINT and SIGTERM (a Ctrl-C reaches the whole process group; the engine answers it with a Panic that
must still go out through here).

ANTIPHON_JACK_IO=rtmidi makes JACK use python-rtmidi even where the native client builds.
"""
from __future__ import annotations

import multiprocessing as mp
import os
import sys
import threading
import time

from .sender import SenderStats

_STATS_FIELDS = ("sent", "dropped", "queued", "sounding", "late_current_ms", "late_worst_ms", "late_p50_ms",
                 "late_p99_ms", "window", "in_dropped", "late_ticks", "lost", "max_cycle_us", "missed_cycles",
                 "lost_ticks_here", "server_gone")
_INT_FIELDS = {"sent", "dropped", "queued", "sounding", "window", "in_dropped", "late_ticks", "lost", "missed_cycles",
               "lost_ticks_here", "server_gone"}
FORWARD_S = 0.001  # "sent" batches go to the engine this often; a received note or controller goes at once
POLL_S = 0.0005  # rtmidi's queue is polled this often (the native client needs no polling)
GIL_SWITCH_S = 0.0005  # a thread handing a player's note on waits at most this long for the GIL


def _realtime_priority() -> str:
    """For python-rtmidi's ports: this thread, the threads it starts and the driver threads the ports
    create run before ordinary work where the system allows (SCHED_FIFO, else a higher nice level): the
    poller sends what waits for a 0xF8. They sleep between polls and deadlines. The native client needs
    none of it: its JACK thread asks for SCHED_FIFO itself, its deadline thread too, and the rest of this
    process stays ordinary (realtime Python polling beside a --no-realtime JACK server only takes cycles
    from the server)."""
    try:
        os.sched_setscheduler(0, os.SCHED_FIFO, os.sched_param(10))
        return "fifo"
    except (AttributeError, OSError):
        pass
    try:
        os.nice(-10)
        return "nice"
    except (AttributeError, OSError):
        return "normal"


class NullIO:
    """No ports (the sender benchmark): a TimedSender whose messages go nowhere."""

    kind = "none"
    backend = None
    client_name = in_name = out_name = None

    def __init__(self):
        from .sender import TimedSender

        self.timed = TimedSender(lambda msg: None, name="antiphon-sender", realtime=True)

    def poll(self):
        pass

    def wait_input(self, timeout_s):
        time.sleep(timeout_s)

    def read_input(self):
        return []

    def read_sent(self):
        return []

    def send(self, msg, tag=0):
        self.timed.send_now(msg)
        return True

    def at_tick(self, epoch, ordinal, msg, tag=0):
        return self.send(msg, tag)

    def cancel_from(self, epoch, ordinal):
        return True

    def arm_interrupt(self, epoch, armed):
        return True

    def release(self, clear_ticks=True, controllers=False):
        if controllers:
            self.timed.panic()
        else:
            self.timed.cancel_pending(release_now=True)
        return True

    def release_missed(self):
        return True

    def release_every_note(self, channels):
        pass

    def sounding(self):
        return self.timed.sounding()

    def stats(self):
        st = self.timed.stats()
        return {"sent": st.sent, "sounding": st.sounding, "queued": st.queued}

    def pending(self):
        return 0

    def stop_cycles(self):
        pass

    def close(self):
        self.timed.close(panic=False)


def open_io(backend: str | None, in_port: str | None = None, out_port: str | None = None):
    """The port layer: the native JACK client where it can be built, else python-rtmidi, polled."""
    if backend is None:
        return NullIO()
    if backend == "jack" and os.environ.get("ANTIPHON_JACK_IO", "").lower() != "rtmidi":
        from . import jack_lib
        from .jack_native import NativeJack, NativeUnavailable

        if jack_lib.any_library() is not None and jack_lib.find_server() is None:
            raise ValueError(f"no JACK server reachable (JACK_DEFAULT_SERVER={jack_lib.server_name()}): start "
                             "jackd, or PipeWire with pipewire-jack")
        try:
            io = NativeJack.open()
        except NativeUnavailable as exc:
            reason = str(exc)
        else:
            try:
                _connect_named(io, in_port, out_port)
            except Exception:
                io.close()
                raise
            return io
        try:
            from .polled_io import PolledIO

            _realtime_priority()
            return PolledIO(backend, in_port, out_port)
        except ValueError as exc:
            raise ValueError(f"{exc} (Antiphon's own JACK client was not available either: {reason})") from None
    from .polled_io import PolledIO

    _realtime_priority()
    return PolledIO(backend, in_port, out_port)


def _connect_named(io, in_port: str | None, out_port: str | None) -> None:
    """--in-port / --out-port on the native client: its ports connected to the existing ones named
    (matched as plugin.ports matches them; our own ports are never candidates)."""
    from .ports import find_port_name

    own = io.client_name + ":"
    if in_port is not None:
        src = find_port_name(io.ports("out"), in_port, "jack", "input", exclude_prefix=own)
        if io.connect(src, io.in_name) != 0:
            raise ValueError(f"cannot connect {src!r} to {io.in_name!r}")
        io.in_name = src
    if out_port is not None:
        dst = find_port_name(io.ports("in"), out_port, "jack", "output", exclude_prefix=own)
        seen = io.stats().get("connects", 0)
        if io.connect(io.out_name, dst) != 0:
            raise ValueError(f"cannot connect {io.out_name!r} to {dst!r}")
        io.out_name = dst
        _wait_until_connected(io, seen)


def _wait_until_connected(io, seen: int, timeout: float = 2.0) -> None:
    """jack_connect returns before the process graph carries the new edge: what the next cycles write
    (the start's release sweep) would be lost. Waits for the connect callback, then two cycles more."""
    deadline = time.monotonic() + timeout
    while io.stats().get("connects", 0) <= seen and time.monotonic() < deadline:
        time.sleep(0.002)
    cycles = io.stats().get("cycles", 0)
    while io.stats().get("cycles", 0) < cycles + 2 and time.monotonic() < deadline:
        time.sleep(0.002)


class _ReconnectWatch:
    """Tells when Antiphon Out gains a connection: the native client counts them in its connect
    callback; python-rtmidi's JACK port is watched through libjack (plugin.ports.JackConnectionWatch)."""

    def __init__(self, io):
        self._io = io
        self._watch = None
        self._seen = io.stats().get("connects", 0) if io.kind == "native" else 0
        if io.kind == "rtmidi" and io.backend == "jack":
            from .ports import JackConnectionWatch

            self._watch = JackConnectionWatch.open(io.out_name)

    def changed(self) -> bool:
        if self._io.kind == "native":
            n = self._io.stats().get("connects", 0)
            new, self._seen = n != self._seen, n
            return new
        return self._watch is not None and self._watch.changed()

    def close(self) -> None:
        if self._watch is not None:
            self._watch.close()


def _child(control, events, stats, backend, in_port, out_port, release_channels) -> None:
    import signal

    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    try:
        io = open_io(backend, in_port, out_port)
    except Exception as exc:  # why the ports could not open, as one line for the engine to raise
        control.send(("error", type(exc).__name__, str(exc)))
        return
    io.release_every_note(release_channels)  # notes a previous run (killed hard) may have left on
    # the forwarder, woken by a player's note, must get the GIL from the command thread within half a
    # millisecond, not Python's default 5
    sys.setswitchinterval(min(sys.getswitchinterval(), GIL_SWITCH_S))
    timed = io.timed
    watch = _ReconnectWatch(io)
    control.send(("ready", {"kind": io.kind, "backend": io.backend, "client": io.client_name,
                            "in": io.in_name, "out": io.out_name}))
    stop = threading.Event()

    def poller() -> None:  # python-rtmidi's queue; a no-op for the native client
        while not stop.is_set():
            io.poll()
            time.sleep(POLL_S)

    def forwarder() -> None:
        while not stop.is_set():
            try:
                got = io.read_input()
                if got:
                    events.send(("in", got))
                sent = io.read_sent()
                if sent:
                    events.send(("sent", sent))
            except (OSError, ValueError, EOFError):
                return  # the engine is gone; the command loop notices too
            io.wait_input(FORWARD_S)  # a player's note wakes it at once

    threads = [threading.Thread(target=forwarder, name="antiphon-forwarder", daemon=True)]
    if io.kind == "rtmidi":
        threads.append(threading.Thread(target=poller, name="antiphon-poller", daemon=True))
    for t in threads:
        t.start()

    def publish() -> None:
        st, raw = timed.stats(), io.stats()
        values = {"sent": raw.get("sent", st.sent), "dropped": st.dropped + raw.get("queue_full", 0),
                  "queued": raw.get("queued", 0) + st.queued, "sounding": raw.get("sounding", st.sounding),
                  "late_current_ms": st.late_current_ms, "late_worst_ms": st.late_worst_ms,
                  "late_p50_ms": st.late_p50_ms, "late_p99_ms": st.late_p99_ms, "window": st.window,
                  "in_dropped": raw.get("in_dropped", 0), "late_ticks": raw.get("late", 0),
                  "lost": raw.get("lost", 0) + getattr(io, "command_overflows", 0),
                  "max_cycle_us": raw.get("max_cycle_ns", 0) / 1000,
                  "missed_cycles": raw.get("missed_cycles", -1), "lost_ticks_here": raw.get("lost_ticks_own", -1),
                  "server_gone": raw.get("server_gone", 0)}
        for i, name in enumerate(_STATS_FIELDS):
            stats[i] = float(values[name])

    watched = time.monotonic()
    resynced = time.monotonic()
    try:
        while True:
            now = time.monotonic()
            if now - watched >= 0.2:
                watched = now
                if watch.changed():  # connected (again): send the note-offs a disconnect may have swallowed
                    io.release_missed()
            if io.kind == "native" and now - resynced >= 0.25:
                resynced = now
                io.resync_clock()
            if not control.poll(0.05):
                publish()
                continue
            cmd = control.recv()
            op = cmd[0]
            if op == "tick":
                for epoch, ordinal, msg, tag in cmd[1]:
                    io.at_tick(epoch, ordinal, msg, tag)
            elif op == "at":
                for deadline, msg in cmd[1]:
                    timed.schedule(deadline, msg)
            elif op == "now":
                io.send(cmd[1], cmd[2])
            elif op == "reflexes":
                io.arm_reflexes(*cmd[1:])
            elif op == "interrupt":
                io.arm_interrupt(cmd[1], cmd[2])
            elif op == "cancel_from":
                timed.cancel_from(cmd[1])
            elif op == "cancel_ticks":
                io.cancel_from(cmd[1], cmd[2])
            elif op == "relocate":  # the song jumped: what sounds ends, no CC 123 (loops would fill with it)
                timed.clear()
                io.release(clear_ticks=True, controllers=False)
            elif op == "panic":
                timed.clear()
                io.release(clear_ticks=True, controllers=True)
            elif op == "reset_stats":
                timed.reset_stats()
            elif op == "sounding":
                control.send(("sounding", io.sounding()))
            elif op == "close":
                break
            publish()
    except (EOFError, OSError):
        pass  # the engine process is gone: release everything below
    finally:
        timed.clear()
        io.release(clear_ticks=True, controllers=True)
        deadline = time.monotonic() + 2.0  # a starved server may skip cycles for a while
        while io.pending() and time.monotonic() < deadline:
            time.sleep(0.002)
        time.sleep(0.02)  # the release goes out, and is forwarded, before the ports close
        stop.set()
        for t in threads:
            t.join(0.5)
        io.stop_cycles()  # what the exit line says was sent is what went out, and nothing more goes
        try:
            sent = io.read_sent()
            if sent:
                events.send(("sent", sent))
        except (OSError, ValueError):
            pass
        publish()
        watch.close()
        io.close()
        try:
            control.send(("closed", None))
        except (OSError, ValueError):
            pass


class IOProcess:
    """The engine's side of the I/O process. backend None = no ports at all (the sender benchmark).

    `on_input(events)` gets [(time, message, ordinal, epoch, frame[, reflex])] and `on_sent(messages)` gets
    [(time, message, tag, ordinal, late)], both on one reader thread of this process."""

    def __init__(self, backend: str | None, in_port: str | None = None, out_port: str | None = None,
                 release_channels=(), on_input=None, on_sent=None, start_timeout: float = 30.0):
        ctx = mp.get_context("spawn")
        self._control, child_control = ctx.Pipe()
        events_in, events_out = ctx.Pipe(duplex=False)
        self._stats = ctx.Array("d", len(_STATS_FIELDS), lock=False)
        self._lock = threading.Lock()
        self._reply_lock = threading.Lock()
        self._replies: list = []
        self._on_input, self._on_sent = on_input, on_sent
        self._proc = ctx.Process(target=_child, name="antiphon-io",
                                 args=(child_control, events_out, self._stats, backend, in_port, out_port,
                                       tuple(release_channels)), daemon=True)
        self._proc.start()
        child_control.close()
        events_out.close()
        self._events = events_in
        self._closed = False
        if not self._control.poll(start_timeout):
            self._proc.kill()
            raise OSError("the MIDI I/O process did not start")
        try:
            reply = self._control.recv()
        except EOFError:
            self._proc.join(2)
            raise OSError(f"the MIDI I/O process exited before it was ready (exit code {self._proc.exitcode})") from None
        if reply[0] == "error":
            self._proc.join(2)
            _, kind, message = reply
            raise (ValueError if kind == "ValueError" else OSError)(message)
        info = reply[1]
        self.kind, self.backend, self.client_name = info["kind"], info["backend"], info["client"]
        self.in_name, self.name = info["in"], info["out"]
        self._reader = threading.Thread(target=self._read_events, name="antiphon-io-reader", daemon=True)
        self._reader.start()

    @property
    def out_name(self) -> str:
        return self.name

    @property
    def pid(self) -> int:
        return self._proc.pid

    def _read_events(self) -> None:
        while True:
            try:
                kind, payload = self._events.recv()
            except (EOFError, OSError):
                return
            try:
                if kind == "in" and self._on_input is not None:
                    self._on_input(payload)
                elif kind == "sent" and self._on_sent is not None:
                    self._on_sent(payload)
            except Exception:  # a reader error must not stop the flow of input
                pass

    def _send(self, cmd) -> None:
        with self._lock:
            if self._closed:
                return
            try:
                self._control.send(cmd)
            except (OSError, ValueError, BrokenPipeError):
                self._closed = True

    # ---- output (any thread) ----------------------------------------------------------------------------
    def at_tick_many(self, items) -> None:
        """[(epoch, ordinal, message, tag)]: each goes out with that 0xF8 (at once if it has passed)."""
        items = [(int(e), int(o), bytes(m), int(tag)) for e, o, m, tag in items]
        if items:
            self._send(("tick", items))

    def at_tick(self, epoch: int, ordinal: int, msg, tag: int = 0) -> None:
        self.at_tick_many([(epoch, ordinal, msg, tag)])

    def schedule(self, deadline: float, msg) -> bool:
        self._send(("at", [(float(deadline), bytes(msg))]))
        return True

    def schedule_many(self, items) -> None:
        items = [(float(d), bytes(m)) for d, m in items]
        if items:
            self._send(("at", items))

    def send_now(self, msg, tag: int = 0) -> None:
        self._send(("now", bytes(msg), int(tag)))

    def cancel_from(self, deadline: float) -> None:
        """Deadline-scheduled messages due at `deadline` or later are withdrawn."""
        self._send(("cancel_from", float(deadline)))

    def cancel_ticks_from(self, epoch: int, ordinal: int) -> None:
        """Messages waiting for 0xF8 number `ordinal` or later are withdrawn; what would still sound
        there ends there."""
        self._send(("cancel_ticks", int(epoch), int(ordinal)))

    @property
    def supports_reflexes(self) -> bool:
        """Whether the port layer answers a player's note with an armed reaction in its own cycle (the native
        JACK client; with python-rtmidi the reaction comes from the engine)."""
        return self.kind == "native"

    def arm_reflexes(self, table_id: int, epoch: int, first: int, last: int, reactions: dict[int, list[bytes]]) -> None:
        """See NativeJack.arm_reflexes; table_id 0 disarms. Packed here: the I/O process copies it in one call."""
        from .jack_native import pack_reflexes

        self._send(("reflexes", table_id, epoch, first, last, pack_reflexes(reactions) if table_id else b""))

    def arm_interrupt(self, epoch: int, armed: bool) -> None:
        """While armed, the player's next note-on of transport `epoch` ends the answer in the port layer itself:
        in its JACK cycle, at the note's frame (native), or in the poll that reads it (python-rtmidi)."""
        self._send(("interrupt", int(epoch), bool(armed)))

    def cancel_pending(self, release_now: bool = True) -> None:
        """Everything queued is dropped and every sounding note released (no CC 123): a relocation."""
        self._send(("relocate",))

    def panic(self) -> None:
        self._send(("panic",))

    def reset_stats(self) -> None:
        self._send(("reset_stats",))

    # ---- readers ----------------------------------------------------------------------------------------
    def stats(self) -> SenderStats:
        v = list(self._stats)
        return SenderStats(*(int(x) if name in _INT_FIELDS else x for name, x in zip(_STATS_FIELDS, v)))

    def sounding(self) -> list[tuple[int, int]]:
        with self._reply_lock:
            with self._lock:
                if self._closed:
                    return []
                self._control.send(("sounding",))
            while True:
                kind, info = self._control.recv()
                if kind == "sounding":
                    return [tuple(x) for x in info]

    @property
    def alive(self) -> bool:
        return self._proc.is_alive()

    def close(self, timeout: float = 5.0) -> None:
        """Panic and stop the child (it forwards what it sent last before it goes). Idempotent."""
        with self._lock:
            if not self._closed:
                try:
                    self._control.send(("close",))
                except (OSError, ValueError):
                    pass
                self._closed = True
        self._proc.join(timeout)
        if self._proc.is_alive():
            self._proc.kill()
            self._proc.join(1)
        self._reader.join(1.0)
