"""TimedSender: one thread that sends each MIDI message at its absolute deadline.

Deadlines are time.perf_counter() seconds. The thread sleeps on a Condition until about `spin_s`
before the earliest deadline (a newly scheduled earlier event wakes it), spins the rest, then sends.
It keeps the notes it has actually sent, so Panic and every stop path can release exactly those:

- note-on with velocity > 0 makes (channel, pitch) sound; note-off or note-on velocity 0 releases it;
- a note-on for a pitch already sounding is preceded by a note-off, so ons and offs always pair;
- a note-off for a pitch it never started (its note-on was dropped or already released) is skipped.

The queue is bounded: past `max_queue` events, new note-ons are dropped and counted; note-offs and
everything else are always queued.

`realtime`: the thread asks for SCHED_FIFO for itself (it sleeps between deadlines).

The GIL: a busy Python thread holds the interpreter for up to sys.getswitchinterval() (5 ms by
default) before a woken sender can run. `switch_interval` (default 0.5 ms) lowers that process-wide
when the sender starts; pass None to leave the interpreter alone.
"""
from __future__ import annotations

import heapq
import itertools
import sys
import threading
import time
from collections import deque
from dataclasses import dataclass
from typing import Callable, Iterable

NOTE_OFF = 0x80
NOTE_ON = 0x90
CONTROL_CHANGE = 0xB0
ALL_NOTES_OFF = 123
SUSTAIN = 64


@dataclass(frozen=True)
class SenderStats:
    sent: int  # messages handed to the port (panic output included)
    dropped: int  # note-ons dropped because the queue was full
    queued: int
    sounding: int  # notes sent and not yet released
    late_current_ms: float  # lateness of the last scheduled message sent
    late_worst_ms: float  # worst since start (or reset_stats)
    late_p50_ms: float  # over the rolling window
    late_p99_ms: float
    window: int  # messages in the rolling window
    in_dropped: int = 0  # input messages the I/O layer could not keep (its ring full: never note-offs)
    late_ticks: int = 0  # messages queued for a 0xF8 that had passed already (sent at once)
    lost: int = 0  # messages that could not be written at all (port buffer full for many cycles)
    max_cycle_us: float = 0.0  # the longest JACK process callback of Antiphon's own client
    missed_cycles: int = -1  # cycles the server never ran Antiphon's JACK client in (-1: the I/O layer cannot tell)
    lost_ticks_here: int = -1  # of the lost 0xF8s, those due in such a cycle (the rest never reached the port)
    server_gone: int = 0  # 1: the JACK server shut Antiphon's client down (it stopped): nothing can be sent


def _is_note_on(msg: bytes) -> bool:
    return len(msg) >= 3 and msg[0] & 0xF0 == NOTE_ON and msg[2] > 0


def _is_note_off(msg: bytes) -> bool:
    return len(msg) >= 3 and (msg[0] & 0xF0 == NOTE_OFF or (msg[0] & 0xF0 == NOTE_ON and msg[2] == 0))


def release_every_note(sink: Callable[[bytes], None], channels) -> None:
    """Note-offs for all 128 pitches, then sustain off and All Notes Off, on each channel: what a run
    killed hard may have left sounding. Spaced out, since JACK ports buffer a few hundred bytes a period."""
    for ch in channels:
        for pitch in range(128):
            sink(bytes([NOTE_OFF | ch, pitch, 0]))
            if pitch % 16 == 15:
                time.sleep(0.003)
        sink(bytes([CONTROL_CHANGE | ch, SUSTAIN, 0]))
        sink(bytes([CONTROL_CHANGE | ch, ALL_NOTES_OFF, 0]))


class TimedSender:
    """Sends messages at perf_counter() deadlines from a dedicated thread.

    `output` is a callable taking the message bytes, or an object with `send_message(bytes)`
    (an rtmidi.MidiOut or plugin.ports.OutputPort)."""

    def __init__(
        self,
        output,
        max_queue: int = 10_000,
        spin_s: float = 0.001,
        window: int = 1000,
        switch_interval: float | None = 0.0005,
        clock: Callable[[], float] = time.perf_counter,
        name: str = "antiphon-sender",
        realtime: bool = False,
    ):
        self._send_fn: Callable[[bytes], None] = output if callable(output) else output.send_message
        self.max_queue = int(max_queue)
        self.spin_s = float(spin_s)
        self._clock = clock
        self._cond = threading.Condition()
        self._heap: list[tuple[float, int, bytes]] = []
        self._seq = itertools.count()
        self._send_lock = threading.Lock()  # one writer on the port at a time (thread or panic)
        self._sounding: dict[tuple[int, int], int] = {}  # (channel, pitch) -> times started (0/1)
        self._channels: set[int] = set()
        self._touched: set[tuple[int, int]] = set()  # notes started since the last release_missed()
        self._late: deque[float] = deque(maxlen=int(window))
        self._late_current = 0.0
        self._late_worst = 0.0
        self._sent = 0
        self._dropped = 0
        self._skipped_offs = 0
        self._errors = 0
        self._closing = False
        self._epoch = 0  # bumped by panic/cancel so events already popped are not sent after them
        self._realtime = realtime
        if switch_interval is not None and sys.getswitchinterval() > switch_interval:
            sys.setswitchinterval(switch_interval)
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)
        self._thread.start()

    # ---- producers (any thread) -----------------------------------------------------------
    def schedule(self, deadline: float, msg: bytes | Iterable[int]) -> bool:
        """Queue `msg` for perf_counter() time `deadline`; False if it was dropped (queue full)."""
        msg = bytes(msg)
        if not msg:
            return False
        with self._cond:
            if self._closing:
                return False
            if len(self._heap) >= self.max_queue and _is_note_on(msg):
                self._dropped += 1
                return False
            item = (float(deadline), next(self._seq), msg)
            heapq.heappush(self._heap, item)
            if self._heap[0] is item:
                self._cond.notify()
        return True

    def send_now(self, msg: bytes | Iterable[int]) -> None:
        """Send immediately from the caller's thread, tracked like scheduled output."""
        with self._send_lock:
            self._emit(bytes(msg))

    def cancel_pending(self, release_now: bool = False) -> int:
        """Drop queued events except the note-offs owed to notes already sounding (one each, kept
        at their deadlines). Sounding notes with no queued note-off are released now, as are all
        sounding notes if `release_now`. Returns how many events were dropped."""
        with self._cond:
            with self._send_lock:
                owed = set(self._sounding)
            keep = []
            kept = set()
            if not release_now:
                for item in sorted(self._heap):
                    msg = item[2]
                    if _is_note_off(msg):
                        key = (msg[0] & 0x0F, msg[1])
                        if key in owed and key not in kept:
                            kept.add(key)
                            keep.append(item)
            dropped = len(self._heap) - len(keep)
            self._epoch += 1
            self._heap = keep
            heapq.heapify(self._heap)
            self._cond.notify()
        with self._send_lock:
            for ch, pitch in sorted(owed - kept):
                if (ch, pitch) in self._sounding:
                    self._emit(bytes([NOTE_OFF | ch, pitch, 0]))
        return dropped

    def clear(self) -> int:
        """Drop everything queued and send nothing (whoever owns the port releases what sounds).
        Returns how many events were dropped."""
        with self._cond:
            dropped = len(self._heap)
            self._heap.clear()
            self._epoch += 1
            self._cond.notify()
        return dropped

    def cancel_from(self, deadline: float) -> int:
        """Drop every queued event due at `deadline` or later (material withdrawn by the engine).
        Any note that would still sound at `deadline` gets its note-off there. Returns how many
        events were dropped."""
        with self._cond:
            keep = [item for item in self._heap if item[0] < deadline]
            dropped = len(self._heap) - len(keep)
            if not dropped:
                return 0
            with self._send_lock:
                will_sound = set(self._sounding)
            for _, _, msg in sorted(keep):
                if _is_note_on(msg):
                    will_sound.add((msg[0] & 0x0F, msg[1]))
                elif _is_note_off(msg):
                    will_sound.discard((msg[0] & 0x0F, msg[1]))
            for ch, pitch in sorted(will_sound):
                keep.append((float(deadline), next(self._seq), bytes([NOTE_OFF | ch, pitch, 0])))
            self._heap = keep
            heapq.heapify(self._heap)
            self._cond.notify()
        return dropped

    def panic(self) -> None:
        """Drop everything queued, release every sounding note, then CC 64=0 and CC 123 on every
        channel used."""
        with self._cond:
            self._heap.clear()
            self._epoch += 1
            self._cond.notify()
        with self._send_lock:
            for ch, pitch in sorted(self._sounding):
                self._emit(bytes([NOTE_OFF | ch, pitch, 0]))
            for ch in sorted(self._channels):
                self._emit(bytes([CONTROL_CHANGE | ch, SUSTAIN, 0]))
                self._emit(bytes([CONTROL_CHANGE | ch, ALL_NOTES_OFF, 0]))

    def release_missed(self) -> int:
        """Note-offs again for every note started since the last call that is not sounding now: what a
        receiver connected anew (after a disconnect that swallowed the note-offs) may still hold. No
        CC 123: the notes sounding now stay on. Returns how many note-offs went out."""
        with self._send_lock:
            missed = sorted(self._touched - set(self._sounding))
            for ch, pitch in missed:
                self._write(bytes([NOTE_OFF | ch, pitch, 0]))
            self._touched = set(self._sounding)
            return len(missed)

    def close(self, timeout: float = 2.0, panic: bool = True) -> None:
        """Panic (unless the port's owner releases its notes itself), then stop the thread. Idempotent."""
        if panic and self._thread.is_alive():
            self.panic()
        with self._cond:
            self._closing = True
            self._heap.clear()
            self._cond.notify()
        if threading.current_thread() is not self._thread:
            self._thread.join(timeout)

    def __enter__(self) -> "TimedSender":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    # ---- readers ---------------------------------------------------------------------------
    def stats(self) -> SenderStats:
        with self._cond:
            queued = len(self._heap)
        with self._send_lock:
            window = sorted(self._late)
            sounding = len(self._sounding)
            sent, dropped = self._sent, self._dropped
            cur, worst = self._late_current, self._late_worst

        def pct(q: float) -> float:
            if not window:
                return 0.0
            return window[min(len(window) - 1, int(q * len(window)))] * 1e3

        return SenderStats(sent, dropped, queued, sounding, cur * 1e3, worst * 1e3, pct(0.5), pct(0.99), len(window))

    def sounding(self) -> list[tuple[int, int]]:
        """(channel, pitch) of the notes sent and not released."""
        with self._send_lock:
            return sorted(self._sounding)

    def reset_stats(self) -> None:
        with self._send_lock:
            self._late.clear()
            self._late_worst = self._late_current = 0.0

    @property
    def alive(self) -> bool:
        return self._thread.is_alive()

    # ---- the thread ------------------------------------------------------------------------
    def _run(self) -> None:
        if self._realtime:  # this thread alone runs before ordinary work, where the system allows it
            try:
                import os

                os.sched_setscheduler(0, os.SCHED_FIFO, os.sched_param(10))
            except (AttributeError, OSError):
                pass
        clock = self._clock
        while True:
            with self._cond:
                if self._closing:
                    return
                if not self._heap:
                    self._cond.wait()
                    continue
                deadline = self._heap[0][0]
                wait = deadline - clock() - self.spin_s
                if wait > 0:
                    self._cond.wait(wait)
                    continue
            while clock() < deadline:  # spin the last fraction of a millisecond
                pass
            with self._cond:
                now = clock()
                epoch = self._epoch
                due = []
                while self._heap and self._heap[0][0] <= now:
                    due.append(heapq.heappop(self._heap))
            if not due:
                continue
            with self._send_lock:
                for dl, _, msg in due:
                    if self._epoch != epoch and not _is_note_off(msg):
                        continue  # panic/cancel came between popping and sending
                    late = clock() - dl
                    self._emit(msg)
                    self._late_current = late
                    self._late.append(late)
                    if late > self._late_worst:
                        self._late_worst = late

    def _emit(self, msg: bytes) -> None:
        """Send one message, keeping the note bookkeeping. Caller holds _send_lock."""
        status = msg[0]
        kind = status & 0xF0
        if 0x80 <= status < 0xF0:
            ch = status & 0x0F
            if _is_note_off(msg):
                key = (ch, msg[1])
                if key not in self._sounding:
                    self._skipped_offs += 1
                    return
                self._write(msg)
                del self._sounding[key]
                return
            if kind == NOTE_ON and len(msg) >= 3:
                key = (ch, msg[1])
                if key in self._sounding:
                    self._write(bytes([NOTE_OFF | ch, msg[1], 0]))
                self._write(msg)
                self._sounding[key] = 1
                self._touched.add(key)
                self._channels.add(ch)
                return
            self._channels.add(ch)
        self._write(msg)

    def _write(self, msg: bytes) -> None:
        try:
            self._send_fn(msg)
            self._sent += 1
        except Exception:  # a port error must not kill the timing thread
            self._errors += 1
