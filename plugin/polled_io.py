"""Ports through python-rtmidi, polled from a thread of ours: ALSA, CoreMIDI, and JACK without a C compiler.

The same interface as plugin/jack_native.py's client, done in Python: `poll()` (called every half
millisecond by the I/O process's input thread) drains rtmidi's queue, stamps each message with its
driver time, its 0xF8 ordinal and transport epoch, and on each 0xF8 sends what was queued for it.
No Python runs in rtmidi's (or JACK's) threads; the cost is one poll interval plus one JACK period
between a 0xF8 and the notes it releases, where the native client has none.

Times: rtmidi gives each message the seconds since the previous one, from the driver's clock (JACK's
jack_get_time() when its process callback ran, the ALSA queue's timestamps). `DeltaTimeline` sums
them and anchors the sum on perf_counter() at the earliest moment consistent with every message
having been seen after it arrived (a minimum over the lags, let drift slowly upwards so that the two
clocks' frequency difference never accumulates).
"""
from __future__ import annotations

import heapq
import threading
import time
from collections import deque

from . import ports
from .sender import TimedSender, _is_note_off, _is_note_on, release_every_note

CLOCK, START, CONTINUE, STOP, SONG_POSITION = 0xF8, 0xFA, 0xFB, 0xFC, 0xF2
INTERRUPTED_ANSWER = 0xFFFFFFFF  # as plugin/jack_native.py marks a note-on that ended the answer


class DeltaTimeline:
    """Delta times (seconds since the previous message) -> perf_counter() times."""

    DRIFT = 5e-4  # the anchor may rise by this many seconds per second (500 ppm: the kernel's largest slew)

    def __init__(self):
        self.total = 0.0
        self.anchor: float | None = None
        self._seen = 0.0

    def stamp(self, delta: float, seen: float) -> float:
        self.total += max(delta, 0.0)
        lag_free = seen - self.total
        if self.anchor is None or lag_free < self.anchor:
            self.anchor = lag_free
        else:
            self.anchor = min(lag_free, self.anchor + (seen - self._seen) * self.DRIFT)
        self._seen = seen
        return self.anchor + self.total


class TickCounter:
    """The native client's count of 0xF8s (plugin/jack_native.py, count_tick), on driver time stamps instead
    of sample frames: an interval of 1.6 periods or more (up to 3 missing) counts the ticks that never
    arrived, so that notes queued by count stay on their tick; a long one followed by a short one is a
    late 0xF8, and four long ones in a row a slower tempo.

    rtmidi stamps a message with the time its JACK process callback ran, not its frame, so a long interval is
    far more often a late callback than a lost 0xF8. The count therefore waits for the next 0xF8 to tell them
    apart: on time, the ticks are counted lost then (what was queued for them goes out a tick late); short,
    that 0xF8 was late and nothing was lost (nothing went out a tick early). `reset()` at every transport message."""

    def __init__(self):
        self.ordinal = 0
        self.lost = 0
        self._last: float | None = None
        self._intervals: deque = deque(maxlen=8)
        self._pending = 0  # ticks the long intervals in a row say are missing, not counted until the next 0xF8
        self._long_run = 0

    def reset(self) -> None:
        """A transport message: the tempo may have changed meanwhile, the intervals heard say nothing of the next."""
        self._last, self._pending, self._long_run = None, 0, 0
        self._intervals.clear()

    def _settle(self) -> None:
        self._pending = self._long_run = 0

    def tick(self, t: float) -> int:
        if self._last is not None:
            d = t - self._last
            median = sorted(self._intervals)[len(self._intervals) // 2] if len(self._intervals) >= 4 else 0.0
            if median <= 0:
                self._intervals.append(d)
            elif self._pending and d < 0.6 * median:  # long, then short: that 0xF8 came late
                self._settle()
            elif d >= 1.6 * median:
                m = int(d / median - 1.6) + 1
                if m > 3:  # a gap: start over
                    self._settle()
                    self._intervals.clear()
                elif self._long_run >= 3:  # a fourth long interval in a row: the tempo dropped
                    self._settle()
                    self._intervals.clear()
                    self._intervals.append(d)
                else:
                    self._pending += m
                    self._long_run += 1
            else:  # on time: what the long intervals before it said was missing, was
                self.ordinal += self._pending
                self.lost += self._pending
                self._settle()
                self._intervals.append(d)
        self._last = t
        self.ordinal += 1
        return self.ordinal


def cancel_entries(entries: list[tuple[int, int, int, bytes]], ordinal: int, seq) -> list[tuple[int, int, int, bytes]]:
    """The tick queue cut at `ordinal` (as the native client does it): entries (ordinal, seq, tag, msg)
    due before it stay; a note that would still sound there (started by what stays, or whose queued
    note-off is dropped) gets a note-off at `ordinal`."""
    keep, ends, will = [], set(), {}
    for e in sorted(entries):
        msg = e[3]
        note = len(msg) == 3 and msg[0] & 0xF0 in (0x80, 0x90)
        key = (msg[0] & 0x0F, msg[1])
        if e[0] < ordinal:
            keep.append(e)
            if note:
                will[key] = _is_note_on(msg)
        elif note and _is_note_off(msg):
            ends.add(key)
    for ch, pitch in sorted({k for k, on in will.items() if on} | ends):
        keep.append((ordinal, next(seq), 0, bytes([0x80 | ch, pitch, 0])))
    heapq.heapify(keep)
    return keep


def _drain(q: deque) -> list:
    out = []
    while q:
        out.append(q.popleft())
    return out


class PolledIO:
    """Antiphon In and Antiphon Out through python-rtmidi, with the native client's interface."""

    kind = "rtmidi"

    def __init__(self, backend: str, in_name: str | None = None, out_name: str | None = None):
        self._lock = threading.RLock()
        self.inp = ports.open_input(backend, in_name)
        try:
            self.out = ports.open_output(backend, out_name)
        except Exception:
            self.inp.close()
            raise
        self.backend = self.inp.backend
        self.in_name, self.out_name = self.inp.name, self.out.name
        self.client_name = ports.CLIENT_NAME
        self._timeline = DeltaTimeline()
        self._ticks = TickCounter()
        self._epoch = 0
        self._queue: list[tuple[int, int, int, bytes]] = []  # (ordinal, seq, tag, msg)
        self._seq = iter(range(1 << 62))
        self._received: deque = deque()  # (time, message, ordinal, epoch, frame)
        self._input_ready = threading.Event()  # set when a note or controller is received: the forwarder wakes
        self._sent: deque = deque()  # (time, message, tag, ordinal, late, frame: None, none stamped here)
        self._tag = 0
        self._late = True
        self._answer: set[tuple[int, int]] = set()  # (channel, pitch) the tick queue started: what an interruption ends
        self._interrupt_epoch: int | None = None  # armed for this transport epoch (an answer plays)
        self.counts = {"ticks": 0, "late": 0, "stale": 0, "in": 0, "interrupts": 0}
        self.timed = TimedSender(self._write, name="antiphon-sender", realtime=True)

    # ---- output -------------------------------------------------------------------------------
    def _write(self, msg: bytes) -> None:
        """TimedSender's sink: every message that reaches the port, logged for the recorder."""
        self.out.send_message(msg)
        self._sent.append((time.perf_counter(), bytes(msg), self._tag, self._ticks.ordinal, self._late, None))

    def _emit(self, msg: bytes, tag: int = 0, late: bool = True) -> None:
        """`late`: sent at once (True), or with the 0xF8 just polled (False), as the native client logs it."""
        with self._lock:
            self._tag, self._late = tag, late
            if _is_note_off(msg):
                self._answer.discard((msg[0] & 0x0F, msg[1]))
            try:
                self.timed.send_now(msg)
            finally:
                self._tag, self._late = 0, True

    def _emit_queued(self, msg: bytes, tag: int, late: bool) -> None:
        """A message of the tick queue: a note-on is the answer's."""
        self._emit(msg, tag, late)
        if _is_note_on(msg):
            self._answer.add((msg[0] & 0x0F, msg[1]))

    def arm_interrupt(self, epoch: int, armed: bool) -> bool:
        """See NativeJack.arm_interrupt: here the answer ends in the poll that reads the player's note-on."""
        with self._lock:
            self._interrupt_epoch = int(epoch) if armed else None
        return True

    def _interrupt_answer(self) -> bool:
        if self._interrupt_epoch is None or self._interrupt_epoch != self._epoch:
            return False
        self._interrupt_epoch = None
        self._queue = []
        sounding = set(self.timed.sounding())
        for ch, pitch in sorted(self._answer & sounding):
            self._emit(bytes([0x80 | ch, pitch, 0]))
        self._answer.clear()
        self.counts["interrupts"] += 1
        return True

    def send(self, msg: bytes, tag: int = 0) -> bool:
        self._emit(bytes(msg), tag)
        return True

    def send_raw(self, msg: bytes) -> bool:
        self.out.send_message(bytes(msg))
        return True

    def at_tick(self, epoch: int, ordinal: int, msg: bytes, tag: int = 0) -> bool:
        with self._lock:
            if epoch != self._epoch:
                self.counts["stale"] += 1
            elif ordinal <= self._ticks.ordinal:
                self.counts["late"] += 1
                self._emit_queued(bytes(msg), tag, late=True)
            else:
                heapq.heappush(self._queue, (ordinal, next(self._seq), tag, bytes(msg)))
        return True

    def cancel_from(self, epoch: int, ordinal: int) -> bool:
        with self._lock:
            if epoch == self._epoch:
                self._queue = cancel_entries(self._queue, ordinal, self._seq)
        return True

    def release(self, clear_ticks: bool = True, controllers: bool = False) -> bool:
        with self._lock:
            if clear_ticks:
                self._queue = []
            if controllers:
                self.timed.panic()
            else:
                for ch, pitch in self.timed.sounding():
                    self._emit(bytes([0x80 | ch, pitch, 0]))
        return True

    def release_missed(self) -> bool:
        self.timed.release_missed()
        return True

    def release_every_note(self, channels) -> None:
        release_every_note(self.send_raw, channels)

    # ---- input --------------------------------------------------------------------------------
    def poll(self) -> None:
        """Drain rtmidi's queue: stamp each message, and on each 0xF8 send what waits for it."""
        seen = time.perf_counter()
        for msg, delta in self.inp.poll():
            t = self._timeline.stamp(delta, seen)
            status = msg[0]
            with self._lock:
                if status == CLOCK:
                    self._ticks.tick(t)
                    self.counts["ticks"] += 1
                elif status in (START, CONTINUE, STOP, SONG_POSITION):
                    self._ticks.reset()
                    self._epoch += 1  # the transport moved: what waits for ticks was for the old timeline
                    self._queue = []
                    for ch, pitch in self.timed.sounding():
                        self._emit(bytes([0x80 | ch, pitch, 0]))
                self.counts["in"] += 1
                record = (t, msg, self._ticks.ordinal, self._epoch, None)  # no sample frames here
                if _is_note_on(msg) and self._interrupt_answer():
                    record += (INTERRUPTED_ANSWER,)
                self._received.append(record)
                if status < 0xF0:
                    self._input_ready.set()
                if status == CLOCK:
                    while self._queue and self._queue[0][0] <= self._ticks.ordinal:
                        due, _, tag, m = heapq.heappop(self._queue)
                        # queued for a 0xF8 that never arrived (counted lost): logged where it went out
                        self._emit_queued(m, tag, late=due != self._ticks.ordinal)

    def wait_input(self, timeout_s: float) -> None:
        """Sleeps until a note or controller has been received, or `timeout_s`."""
        if self._input_ready.wait(timeout_s):
            self._input_ready.clear()

    def read_input(self) -> list[tuple[float, bytes, int, int, int]]:
        return _drain(self._received)

    def read_sent(self) -> list[tuple[float, bytes, int, int, bool, None]]:
        return _drain(self._sent)

    # ---- readers ------------------------------------------------------------------------------
    def sounding(self) -> list[tuple[int, int]]:
        return self.timed.sounding()

    def stats(self) -> dict[str, int]:
        st = self.timed.stats()
        with self._lock:
            queued = len(self._queue)
        return {"sent": st.sent, "sounding": st.sounding, "queued": queued + st.queued, "malformed": self.inp.malformed,
                "lost_ticks": self._ticks.lost, **self.counts}

    def pending(self) -> int:
        return 0

    def stop_cycles(self) -> None:
        """Nothing to stop: python-rtmidi counts a message as it hands it over."""

    def close(self) -> None:
        self.timed.close(panic=False)
        self.inp.close()
        self.out.close()
