"""The timed sender in a process of its own, so the model's Python never holds its interpreter lock.

A TimedSender in one process shares the GIL with whatever else runs there: a thread generating
flat out makes it milliseconds late (see `antiphon bench`). ProcessSender runs a TimedSender in a
child process that owns the output port and imports nothing heavy; the parent sends it (deadline,
bytes) over a pipe. Deadlines are time.perf_counter() values, which on Linux and macOS read the
same monotonic clock in every process.

The child watches the pipe: if the engine process dies, even by SIGKILL, the pipe closes and the
child releases every sounding note (note-offs, CC 64=0, CC 123) before it exits.
"""
from __future__ import annotations

import multiprocessing as mp
import threading
import time

from .sender import SenderStats

_STATS_FIELDS = ("sent", "dropped", "queued", "sounding", "late_current_ms", "late_worst_ms", "late_p50_ms",
                 "late_p99_ms", "window")


def _realtime_priority() -> str:
    """The sender's threads (and the JACK client thread the port creates) run before ordinary work
    where the system allows: SCHED_FIFO, else a higher nice level, else as they are. It sleeps between
    deadlines, so it never holds a core for long."""
    import os

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


def _child(conn, stats, backend, port_name, release_channels) -> None:
    import signal

    from .ports import open_output
    from .sender import TimedSender, release_every_note

    # Ctrl-C in a terminal (or a kill of the process group) reaches this process too: the engine process
    # answers it with Panic and then "close" through the pipe, so this one must outlive the signal to send
    # them; it leaves on "close", when the pipe closes (the engine died) or by SIGKILL
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    _realtime_priority()

    try:
        out = None if backend is None else open_output(backend, port_name)
    except Exception as exc:  # report why the port could not open, then leave
        conn.send(("error", f"{type(exc).__name__}: {exc}"))
        return
    sink = (lambda msg: None) if out is None else out.send_message
    release_every_note(sink, release_channels)  # notes a previous run (killed hard) may have left on
    sender = TimedSender(sink)
    watch = None
    if out is not None and out.backend == "jack":
        from .ports import JackConnectionWatch

        watch = JackConnectionWatch.open(out.name)
    watched = time.monotonic()
    conn.send(("ready", None if out is None else out.name))

    def publish() -> None:
        st = sender.stats()
        for i, name in enumerate(_STATS_FIELDS):
            stats[i] = float(getattr(st, name))

    try:
        while True:
            if watch is not None and time.monotonic() - watched >= 0.2:
                watched = time.monotonic()
                if watch.changed():  # connected (again): send the note-offs a disconnect may have swallowed
                    sender.release_missed()
            if not conn.poll(0.05):
                publish()
                continue
            cmd = conn.recv()
            op = cmd[0]
            if op == "batch":
                for deadline, msg in cmd[1]:
                    sender.schedule(deadline, msg)
            elif op == "send_now":
                sender.send_now(cmd[1])
            elif op == "cancel_from":
                sender.cancel_from(cmd[1])
            elif op == "cancel_pending":
                sender.cancel_pending(cmd[1])
            elif op == "panic":
                sender.panic()
            elif op == "reset_stats":
                sender.reset_stats()
            elif op == "sounding":
                conn.send(("sounding", sender.sounding()))
            elif op == "close":
                break
            publish()
    except (EOFError, OSError):
        pass  # the engine process is gone: release everything below
    finally:
        sender.close()
        publish()
        if watch is not None:
            watch.close()
        if out is not None:
            out.close()
        try:
            conn.send(("closed", None))
        except (OSError, ValueError):
            pass


class ProcessSender:
    """TimedSender's interface, sending from a child process. backend None = a silent sink (bench)."""

    def __init__(self, backend: str | None, port_name: str | None = None, release_channels=(),
                 start_timeout: float = 20.0):
        ctx = mp.get_context("spawn")
        self._conn, child_conn = ctx.Pipe()
        self._stats = ctx.Array("d", len(_STATS_FIELDS), lock=False)
        self._lock = threading.Lock()
        self._batch: list = []
        self._proc = ctx.Process(target=_child, name="antiphon-sender",
                                 args=(child_conn, self._stats, backend, port_name, tuple(release_channels)),
                                 daemon=True)
        self._proc.start()
        child_conn.close()
        if not self._conn.poll(start_timeout):
            self._proc.kill()
            raise OSError("the sender process did not start")
        kind, info = self._conn.recv()
        if kind == "error":
            self._proc.join(2)
            raise OSError(f"sender process: {info}")
        self.name = info
        self._closed = False

    @property
    def pid(self) -> int:
        return self._proc.pid

    def _send(self, cmd) -> None:
        with self._lock:
            if self._closed:
                return
            try:
                self._conn.send(cmd)
            except (OSError, ValueError, BrokenPipeError):
                self._closed = True

    def schedule(self, deadline: float, msg) -> bool:
        self._send(("batch", [(float(deadline), bytes(msg))]))
        return True

    def schedule_many(self, items) -> None:
        items = [(float(d), bytes(m)) for d, m in items]
        if items:
            self._send(("batch", items))

    def send_now(self, msg) -> None:
        self._send(("send_now", bytes(msg)))

    def cancel_from(self, deadline: float) -> None:
        self._send(("cancel_from", float(deadline)))

    def cancel_pending(self, release_now: bool = False) -> None:
        self._send(("cancel_pending", bool(release_now)))

    def panic(self) -> None:
        self._send(("panic",))

    def reset_stats(self) -> None:
        self._send(("reset_stats",))

    def stats(self) -> SenderStats:
        v = list(self._stats)
        return SenderStats(*(int(x) if name in ("sent", "dropped", "queued", "sounding", "window") else x
                             for name, x in zip(_STATS_FIELDS, v)))

    def sounding(self) -> list[tuple[int, int]]:
        with self._lock:
            if self._closed:
                return []
            self._conn.send(("sounding",))
            while True:
                kind, info = self._conn.recv()
                if kind == "sounding":
                    return info

    @property
    def alive(self) -> bool:
        return self._proc.is_alive()

    def close(self, timeout: float = 3.0) -> None:
        """Panic and stop the child. Idempotent."""
        with self._lock:
            if not self._closed:
                try:
                    self._conn.send(("close",))
                except (OSError, ValueError):
                    pass
                self._closed = True
        self._proc.join(timeout)
        if self._proc.is_alive():
            self._proc.kill()
            self._proc.join(1)
