"""MIDI beat clock follower: 24 ticks per quarter, Start/Continue/Stop, Song Position Pointer.

`ClockFollower.feed()` is called with each realtime/system-common message and its time as the driver
stamped it (time.perf_counter() seconds), in the order they arrived, from whichever thread reads the
input (never a driver's thread). Readers on other threads ask for `tick_at(t)`, `time_of(tick)`,
`bpm`, `running`, or one consistent `snapshot(t)`.

The real world: a missing 0xF8 is counted in `lost_ticks` and the position moves on by the ticks
missed. Where an I/O layer stamps ordinals, it has counted them (Antiphon's JACK client in sample
frames, the same instant it releases queued notes by that count): the follower follows its count.
Otherwise an interval of about two, or three, periods while locked is a lost tick; two such intervals
in a row are a tempo change instead, and a long interval followed by a short one a late time stamp
(the count is taken back either way). The tempo is clamped to 20..400 BPM, so 0xF8s 1.6 ms
apart (a flood, a broken device) never read as 1600 BPM. Song Position Pointer re-anchors the position
at the next 0xF8; while rolling that is a relocation.

Ordinals: an I/O layer that releases notes on 0xF8 by count (plugin/jack_native.py, plugin/polled_io.py)
stamps each message with the number of 0xF8 it has seen (`ordinal`) and its transport `epoch`; fed
those, the follower answers `ordinal_of(tick)`: which 0xF8 will be song tick `tick`.

Tempo is smoothed with a 2nd-order delay-locked loop, as in jack_midi_clock's jack_mclk_dump.c and
Ardour's midi_clock_slave.cc:

    omega = 2*pi*B*T    b = sqrt(2)*omega    c = omega**2
    e  = t_arrival - t1            (phase error of the tick that just arrived)
    t0 = t1 ; t1 += b*e + period ; period += c*e

with T the tick period and B the loop bandwidth in Hz. A narrow loop rejects jitter but follows a
tempo change slowly, so a change detector resets the loop when the mean interval of the last few
ticks departs from the smoothed period, in the same direction on `detect_confirm` ticks in a row, by
more than the measured jitter can explain. After a reset (and at the start) the period comes from a
least-squares line through the ticks since the reset, for `acquire_ticks` ticks; then the loop runs.

Tick positions: the first 0xF8 after Start is song tick 0; after Continue, the tick after the last one
counted (the MIDI spec's "resume where Stop left it"), or the Song Position Pointer's 16th notes * 6 when one
came while stopped; each further 0xF8 adds one. Ticks arriving after an explicit Stop keep the tempo up to
date without moving the position (many DAWs send clock while stopped). Clock ticks with no transport message
ever seen count as running, from the internal clock's next beat (a master starts its clock on a beat).

When no MIDI clock has arrived, `start(t)` runs an internal clock at `internal_bpm`; the first MIDI
tick takes over for good (source 'midi').
"""
from __future__ import annotations

import math
import threading
import time
from collections import deque
from dataclasses import dataclass

from antiphon.engine.events import TICKS_PER_QUARTER, Meter

CLOCK = 0xF8
START = 0xFA
CONTINUE = 0xFB
STOP = 0xFC
SONG_POSITION = 0xF2

DEFAULT_BANDWIDTH_HZ = 0.5  # loop bandwidth B in Hz; tuned with tests/test_clock.py (jitter vs. small changes)
DEFAULT_SILENCE_S = 0.25
MIN_BPM, MAX_BPM = 20.0, 400.0
MIN_PERIOD = 60.0 / (MAX_BPM * TICKS_PER_QUARTER)
MAX_PERIOD = 60.0 / (MIN_BPM * TICKS_PER_QUARTER)
LOST_TICK_RATIO = 1.6  # an interval this many periods long, or more, while locked: a 0xF8 went missing
SHORT_TICK_RATIO = 0.6  # ...unless the next is this short: then the long one was a late time stamp
MAX_LOST_TICKS = 3  # longer gaps (but shorter than the silence rule) restart the phase instead


@dataclass(frozen=True)
class ClockSnapshot:
    bpm: float
    running: bool
    tick: float  # position in ticks (24 per quarter) at `time`
    source: str  # 'midi' or 'internal'
    locked: bool  # following MIDI clock with a settled loop
    bar: int  # 1-based bar number at `tick` for the meter asked (tick 0 is bar 1 beat 1)
    beat: int  # 1-based beat within the bar
    time: float  # the perf_counter() time this snapshot describes
    ticks: int = 0  # 0xF8 received
    lost_ticks: int = 0  # 0xF8 that never arrived (gaps of about two or three periods while locked)


class ClockFollower:
    """Follows MIDI beat clock (or runs an internal clock) and maps ticks <-> perf_counter() time."""

    def __init__(
        self,
        internal_bpm: float = 120.0,
        bandwidth_hz: float = DEFAULT_BANDWIDTH_HZ,
        silence_s: float = DEFAULT_SILENCE_S,
        detect_window: int = 6,
        detect_threshold: float = 0.06,
        lock_ticks: int = 12,
        acquire_ticks: int = 24,
        detect_confirm: int = 3,
    ):
        if not 1.0 <= internal_bpm <= 999.0:
            raise ValueError(f"bpm must be within 1..999, got {internal_bpm}")
        self._lock = threading.Lock()
        self.bandwidth_hz = float(bandwidth_hz)
        self.silence_s = float(silence_s)
        self.detect_window = int(detect_window)
        self.detect_threshold = float(detect_threshold)
        self.lock_ticks = int(lock_ticks)
        self.acquire_ticks = int(acquire_ticks)
        self.detect_confirm = int(detect_confirm)
        self._internal_bpm = float(internal_bpm)
        self._source = "internal"
        self._running = False
        # position/time reference: tick `_ref_tick` happens at `_ref_time`; ticks advance at 1/_period
        self._period = 60.0 / (internal_bpm * TICKS_PER_QUARTER)
        self._ref_tick = 0.0
        self._ref_time = 0.0
        # MIDI clock state
        self._midi_seen = False
        self._transport = "unknown"  # 'unknown' | 'playing' | 'stopped' (by message)
        self._pending_position: int | None = None  # tick the next 0xF8 lands on after Start/Continue/SPP
        self._tick = 0  # integer position of the last counted 0xF8
        self._counted = False  # a 0xF8 has counted since the last Start, Continue or SPP (`_tick` is its position)
        self._last_arrival: float | None = None
        self._last_event = 0.0  # last 0xF8, Start or Continue
        self._t1 = 0.0  # DLL: predicted arrival of the next tick
        self._ticks_since_reset = 0
        self._arrivals: deque[float] = deque(maxlen=max(2, self.detect_window + 1))
        self._acq = [0.0, 0, 0.0, 0.0, 0.0, 0.0]
        self._recent3: deque[float] = deque(maxlen=3)
        self._d2: deque[float] = deque(maxlen=24)  # |second differences| of arrival times
        self._detect_count = 0
        self._detect_sign = 0
        self.resets = 0  # change-detector resets (for tests and diagnostics)
        self.relocations = 0  # Start/Continue (and SPP while rolling): a reader that sees it change knows the song jumped
        self.malformed = 0
        self.ticks = 0  # 0xF8 received
        self.lost_ticks = 0
        self._last_lost = 0  # ticks the previous interval was read as missing (0: it was a normal one)
        # which 0xF8 (by the I/O layer's count) is which song tick: ordinal _ord_base is tick _ord_tick
        self._epoch: int | None = None
        self._ord_base: int | None = None
        self._ord_tick = 0
        self._last_ordinal: int | None = None
        self._tick_frames: dict[int, int] = {}  # ordinal -> sample frame of that 0xF8 (the last 96), where stamped
        # where the I/O layer counted 0xF8s that never arrived: (frame of the one before, frame of the one after,
        # how many), the last 64; a witness on the same server can tell whether anyone received them
        self.lost_spans: deque[tuple[int, int, int]] = deque(maxlen=64)

    # ---- feeding (MIDI input thread) -------------------------------------------------------
    def feed(self, status: int, data: bytes | tuple | list = b"", t: float | None = None,
             ordinal: int | None = None, epoch: int | None = None, frame: int | None = None) -> None:
        """One MIDI message: `status` byte, the data bytes after it, its time (perf_counter), and where
        the I/O layer stamps them, its 0xF8 count, transport epoch and sample frame."""
        if t is None:
            t = time.perf_counter()
        with self._lock:
            self._check_silence(t)
            if epoch is not None and epoch != self._epoch and status != STOP:
                self._tick_frames.clear()  # (a Stop leaves the song where it is: what it releases is placed by frame)
            if epoch is not None:
                self._epoch = epoch
            if status == CLOCK and ordinal is not None and frame is not None:
                self._tick_frames[int(ordinal)] = int(frame)
                self._tick_frames.pop(int(ordinal) - 96, None)
            if status == CLOCK:
                self._on_clock(t, ordinal)
            elif status == START:
                self._on_transport(t, 0, ordinal)
            elif status == CONTINUE:
                # the MIDI spec: Continue resumes where Stop left the song: the next 0xF8 is the tick after the
                # last one counted (or a Song Position Pointer's, sent while stopped)
                if self._pending_position is not None:
                    pos = self._pending_position
                elif self._source == "midi" and self._counted:
                    pos = self._tick + 1
                else:
                    pos = int(round(self._position_now(t)))
                self._on_transport(t, pos, ordinal)
            elif status == STOP:
                self._freeze(t)
                self._transport = "stopped"
                self._pending_position = None
            elif status == SONG_POSITION:
                if len(data) < 2:
                    self.malformed += 1
                    return
                sixteenths = (data[0] & 0x7F) | ((data[1] & 0x7F) << 7)
                pos = sixteenths * (TICKS_PER_QUARTER // 4)
                self._pending_position = pos
                self._counted = False
                if ordinal is not None:
                    self._ord_base, self._ord_tick = ordinal + 1, pos
                if self._running and self._source == "midi":
                    self.relocations += 1  # the next 0xF8 is `pos`: the song jumps under what is scheduled
                else:
                    self._ref_tick = float(pos)
                    self._ref_time = t
                    self._tick = pos

    def _on_transport(self, t: float, position: int, ordinal: int | None = None) -> None:
        self.relocations += 1
        if ordinal is not None:
            self._ord_base, self._ord_tick = ordinal + 1, position  # the next 0xF8 is `position`
        self._midi_seen = True
        self._source = "midi"
        self._transport = "playing"
        self._running = True
        self._pending_position = position
        self._counted = False
        self._tick = position
        self._ref_tick = float(position)
        self._ref_time = t
        self._last_event = t

    def _on_clock(self, t: float, ordinal: int | None = None) -> None:
        self.ticks += 1
        step = None  # 0xF8s the I/O layer counted since the last one (more than 1: some never arrived)
        if ordinal is not None and self._last_ordinal is not None:
            step = ((ordinal - self._last_ordinal + 2**31) % 2**32) - 2**31
        self._last_ordinal = ordinal
        first_midi = not self._midi_seen
        if first_midi and self._pending_position is None and self._transport == "unknown":
            # clock with no transport message: nothing says where the master's bar is, but a master starts its
            # clock on a beat; its first 0xF8 is the internal clock's next beat (0 before it ran)
            beat = TICKS_PER_QUARTER
            self._pending_position = int(math.ceil(self._position_now(t) / beat - 1e-9)) * beat
            if self._running:
                self.relocations += 1  # the internal clock's timeline gives way to the master's
        self._midi_seen = True
        self._source = "midi"
        missing = 0
        if self._last_arrival is None or first_midi:
            self._reset_loop(t, self._period if not first_midi else None)
        else:
            interval = t - self._last_arrival
            if interval <= 0:
                self.malformed += 1
                return
            if step is not None and interval <= self.silence_s:
                # the I/O layer saw the sample frames and counted what never arrived: follow its count
                missing = step - 1
                self._note_lost_span(ordinal, step)
                if missing < 0:  # it took back ticks it had counted as lost (the tempo dropped)
                    self._recent3.clear()
                    self._reset_loop(t, min(max(interval, MIN_PERIOD), MAX_PERIOD))
                else:
                    for k in range(1, missing + 1):  # the loop hears the missing ticks where they were due
                        self._update_loop(self._last_arrival + interval * k / (missing + 1))
                    self._update_loop(t)
                self.lost_ticks += missing
            else:
                missing = self._lost_by_time(t, interval)
        self._last_arrival = t
        self._last_event = t
        if self._transport == "stopped":
            return  # tempo only
        if self._pending_position is not None:
            # first tick after Start/Continue/SPP: it *is* that position; re-anchor the phase there
            self._tick = self._pending_position
            self._pending_position = None
            self._t1 = t + self._period
        elif self._running or self._transport == "unknown":
            self._tick += 1 + missing
        self._counted = True
        self._running = True
        if ordinal is not None:
            self._ord_base, self._ord_tick = ordinal, self._tick
        # the map: tick k at (t1 - period), k+1 at t1
        self._ref_tick = float(self._tick)
        self._ref_time = self._t1 - self._period

    def _note_lost_span(self, ordinal: int, step: int) -> None:
        """Keeps `lost_spans` in step with the I/O layer's count (a step of 0 takes back one it had counted)."""
        if step > 1:
            before, after = self._tick_frames.get(int(ordinal) - step), self._tick_frames.get(int(ordinal))
            if before is not None and after is not None:
                self.lost_spans.append((before, after, step - 1))
        elif step < 1:
            taken = 1 - step
            while taken and self.lost_spans:
                before, after, n = self.lost_spans.pop()
                if n > taken:
                    self.lost_spans.append((before, after, n - taken))
                taken -= min(n, taken)

    def _lost_by_time(self, t: float, interval: float) -> int:
        """Without the I/O layer's count: missing 0xF8s judged by the interval (see the module's docstring);
        returns how many to count now (negative: taken back)."""
        missing = self._missing(interval)
        if interval > self.silence_s or missing > MAX_LOST_TICKS:
            # resumed after a gap: keep the tempo, restart the phase
            self._last_lost = 0
            self._recent3.clear()
            self._reset_loop(t, self._period)
            return 0
        if self._last_lost and interval < SHORT_TICK_RATIO * self._period:
            # a long interval, then a short one: the tick before this one was stamped late, none was lost;
            # the loop heard a tick that was not there, so its phase restarts here (the tempo kept)
            taken = self._undo_lost()
            self._reset_loop(t, self._period)
            return -taken
        if missing and self._last_lost:
            # two long intervals in a row: the tempo dropped, nothing was lost
            taken = self._undo_lost()
            self._recent3.clear()
            self._reset_loop(t, min(max(interval, MIN_PERIOD), MAX_PERIOD))
            return -taken
        for k in range(1, missing + 1):  # the loop hears the missing ticks where they were due
            self._update_loop(self._last_arrival + interval * k / (missing + 1))
        self._update_loop(t)
        self._last_lost = missing
        self.lost_ticks += missing
        return missing

    def _missing(self, interval: float) -> int:
        """0xF8s missing before one that came `interval` after the last (0 unless the loop is settled)."""
        if self._ticks_since_reset < self.lock_ticks:
            return 0
        ratio = interval / self._period
        return int(ratio - LOST_TICK_RATIO) + 1 if ratio >= LOST_TICK_RATIO else 0

    def _undo_lost(self) -> int:
        """The last interval read as missing ticks was a late stamp or the first of a slower tempo: take
        the count back; returns how many (the caller moves the position back by as many)."""
        n, self._last_lost = self._last_lost, 0
        self.lost_ticks -= n
        return n

    def _reset_loop(self, t: float, period: float | None) -> None:
        """Restart acquisition at the tick arriving at `t`, keeping `period` (None: unknown)."""
        self._last_lost = 0
        self._arrivals.clear()
        self._arrivals.append(t)
        self._ticks_since_reset = 0
        self._detect_count = 0
        if period is not None:
            self._period = period
        self._t1 = t + self._period
        self._acq = [t, 0, 0.0, 0.0, 0.0, 0.0]  # t_ref, count, sum i, sum x, sum ii, sum ix (x=t-t_ref)
        self._acq_add(0, 0.0)

    def _acq_add(self, i: int, x: float) -> None:
        a = self._acq
        a[1] += 1
        a[2] += i
        a[3] += x
        a[4] += i * i
        a[5] += i * x

    def _fit(self, t: float) -> None:
        t_ref, m, si, sx, sii, six = self._acq
        n = self._ticks_since_reset
        den = m * sii - si * si
        if den > 0:
            self._period = min(max((m * six - si * sx) / den, MIN_PERIOD), MAX_PERIOD)
            intercept = (sx - self._period * si) / m
            self._t1 = t_ref + intercept + (n + 1) * self._period
        if self._t1 <= t:
            self._t1 = t + self._period

    def _jitter_sigma(self) -> float:
        """Arrival-time jitter (seconds, one sigma) from the mean |second difference| of arrival
        times over the last 24 ticks: a tempo step moves only one second difference."""
        if len(self._d2) < 4:
            return 0.0
        mean_abs = sum(self._d2) / len(self._d2)
        return mean_abs / math.sqrt(2.0 / math.pi) / math.sqrt(6.0)

    def _update_loop(self, t: float) -> None:
        self._recent3.append(t)
        if len(self._recent3) == 3:
            a, b, c = self._recent3
            self._d2.append(abs(c - 2.0 * b + a))
        self._arrivals.append(t)
        self._ticks_since_reset += 1
        n = self._ticks_since_reset
        if n >= self.detect_window and len(self._arrivals) > self.detect_window:
            w = self.detect_window
            mean = (self._arrivals[-1] - self._arrivals[-1 - w]) / w
            # jitter of the arrival times widens the threshold: the mean of w intervals has an error
            # of about sqrt(2)*sigma/w; demand 4 of those
            noise = 4.0 * math.sqrt(2.0) * self._jitter_sigma() / w
            dev = mean - self._period
            if abs(dev) > max(self.detect_threshold * self._period, noise):
                sign = 1 if dev > 0 else -1
                self._detect_count = self._detect_count + 1 if sign == self._detect_sign else 1
                self._detect_sign = sign
            else:
                self._detect_count = 0
            if self._detect_count >= self.detect_confirm:
                self._detect_count = 0
                # sustained tempo change: restart acquisition from the newest k intervals
                k = max(1, w // 2)
                recent = list(self._arrivals)[-1 - k :]
                self._reset_loop(recent[0], None)
                for j, tj in enumerate(recent[1:], start=1):
                    self._arrivals.append(tj)
                    self._acq_add(j, tj - recent[0])
                self._ticks_since_reset = k
                self._fit(t)
                self.resets += 1
                return
        if n <= self.acquire_ticks:
            # acquisition: least-squares line through the ticks since the reset
            self._acq_add(n, t - self._acq[0])
            self._fit(t)
            return
        omega = 2.0 * math.pi * self.bandwidth_hz * self._period
        b = math.sqrt(2.0) * omega
        c = omega * omega
        e = t - self._t1
        self._t1 += b * e + self._period
        self._period = min(max(self._period + c * e, MIN_PERIOD), MAX_PERIOD)
        if self._t1 <= t:  # never predict the next tick in the past
            self._t1 = t + self._period

    def _position_now(self, t: float) -> float:
        if not self._running:
            return self._ref_tick
        if self._source == "midi" and self._pending_position is not None:
            return float(self._pending_position)  # waiting for the first tick after Start/Continue
        return self._ref_tick + (t - self._ref_time) / self._period

    def _freeze(self, t: float) -> None:
        if self._running:
            pos = self._position_now(t)
            if self._source == "midi":
                # never run past the tick after the last one received
                pos = min(pos, self._tick + 1.0)
            self._ref_tick = pos
            self._ref_time = t
        self._running = False

    def _check_silence(self, t: float) -> None:
        if self._running and self._source == "midi" and t - self._last_event > self.silence_s:
            self._freeze(self._last_event + self._period)

    # ---- internal clock ---------------------------------------------------------------------
    def start(self, t: float | None = None, tick: float | None = None) -> None:
        """Run the internal clock from `t` (at `tick`, default where it stood) unless MIDI clock rules."""
        if t is None:
            t = time.perf_counter()
        with self._lock:
            self._check_silence(t)
            if self._source == "midi" and self._running:
                return
            self._source = "internal"
            self._midi_seen = False
            self._period = 60.0 / (self._internal_bpm * TICKS_PER_QUARTER)
            self._ref_tick = self._ref_tick if tick is None else float(tick)
            self._ref_time = t
            self._running = True

    def stop(self, t: float | None = None) -> None:
        """Stop the internal clock (MIDI clock stops only by its own Stop or by silence)."""
        if t is None:
            t = time.perf_counter()
        with self._lock:
            if self._source == "internal":
                self._freeze(t)

    def set_bpm(self, bpm: float, t: float | None = None) -> None:
        """Tempo of the internal clock; takes effect at `t` without moving the position."""
        if not 1.0 <= bpm <= 999.0:
            raise ValueError(f"bpm must be within 1..999, got {bpm}")
        if t is None:
            t = time.perf_counter()
        with self._lock:
            self._internal_bpm = float(bpm)
            if self._source == "internal":
                if self._running:
                    self._ref_tick = self._position_now(t)
                    self._ref_time = t
                self._period = 60.0 / (bpm * TICKS_PER_QUARTER)

    # ---- readers (any thread) ----------------------------------------------------------------
    def poll(self, t: float | None = None) -> bool:
        """Apply the silence rule at time `t`; returns `running`."""
        if t is None:
            t = time.perf_counter()
        with self._lock:
            self._check_silence(t)
            return self._running

    def tick_at(self, t: float | None = None) -> float:
        if t is None:
            t = time.perf_counter()
        with self._lock:
            self._check_silence(t)
            return self._position_now(t)

    def time_of(self, tick: float) -> float:
        """perf_counter() time of `tick` on the current map (extrapolated with the smoothed period).

        While stopped the map is frozen at the stop position: the answer is when `tick` would come
        if the clock restarted at the freeze time at the current tempo."""
        with self._lock:
            return self._ref_time + (tick - self._ref_tick) * self._period

    @property
    def last_tick(self) -> int | None:
        """Song position of the last 0xF8 counted while MIDI clock runs; None with the internal clock,
        while stopped, and between Start/Continue and the first 0xF8 after it."""
        with self._lock:
            if self._source != "midi" or not self._running or self._pending_position is not None:
                return None
            return self._tick

    def ordinal_of(self, tick: int) -> tuple[int, int] | None:
        """(epoch, ordinal): the 0xF8, by the I/O layer's count, that will be song tick `tick` while
        MIDI clock rolls; None with the internal clock, while stopped, or without stamps."""
        with self._lock:
            if self._source != "midi" or not self._running or self._ord_base is None or self._epoch is None:
                return None
            return self._epoch, self._ord_base + int(tick) - self._ord_tick

    def is_stale(self, epoch: int | None) -> bool:
        """A message stamped with an earlier transport epoch than the follower's: it came before the last
        Start, Continue, Stop or SPP (on the old timeline)."""
        with self._lock:
            return epoch is not None and self._epoch is not None and epoch != self._epoch

    def tick_of(self, ordinal: int, epoch: int | None = None) -> int | None:
        """The song tick of 0xF8 number `ordinal` (the I/O layer's count) on the current map; None without one,
        or when `epoch` is given and is not the current transport epoch."""
        with self._lock:
            if self._ord_base is None or (epoch is not None and epoch != self._epoch):
                return None
            return self._ord_tick + int(ordinal) - self._ord_base

    def tick_for(self, t: float, ordinal: int | None = None, epoch: int | None = None,
                 frame: int | None = None) -> float:
        """The song position of a message that came at `t` (sample `frame`) after 0xF8 number `ordinal`: that
        tick's position by the I/O layer's count, plus the fraction of a tick after it, in frames where the
        I/O layer stamps them (between that 0xF8's frame and the next one's, or the last interval's), else on
        the time map. Under a loaded machine the map's phase may stray by a tick; the count and the frames
        do not."""
        pos = self.tick_at(t)
        if ordinal is None or self.source != "midi":
            return pos
        base = self.tick_of(ordinal, epoch)
        running = self.poll(t)
        if base is None or (not running and frame is None):
            return pos
        fraction = pos - base
        if frame is not None:
            with self._lock:
                at, nxt = self._tick_frames.get(int(ordinal)), self._tick_frames.get(int(ordinal) + 1)
                # the last interval heard (a 0xF8 or two before it may never have arrived)
                back, before = next(((k, self._tick_frames[int(ordinal) - k]) for k in (1, 2, 3, 4)
                                     if int(ordinal) - k in self._tick_frames), (1, None))
            wrap = 2**32  # the I/O layer's frames are 32-bit
            span = ((nxt - at) % wrap if at is not None and nxt is not None
                    else ((at - before) % wrap) / back if at is not None and before is not None else None)
            if span:
                fraction = (((int(frame) - at + wrap // 2) % wrap) - wrap // 2) / span
        return base + min(max(fraction, 0.0), 0.99)

    @property
    def bpm(self) -> float:
        with self._lock:
            return 60.0 / (self._period * TICKS_PER_QUARTER)

    @property
    def period(self) -> float:
        """Seconds per tick."""
        with self._lock:
            return self._period

    def lost_where(self) -> list[tuple[int, int, int]]:
        """`lost_spans` as a list: (frame of the 0xF8 before, frame of the one after, how many never arrived)."""
        with self._lock:
            return list(self.lost_spans)

    @property
    def running(self) -> bool:
        return self.poll()

    @property
    def source(self) -> str:
        with self._lock:
            return self._source

    def snapshot(self, t: float | None = None, meter: Meter = Meter()) -> ClockSnapshot:
        if t is None:
            t = time.perf_counter()
        with self._lock:
            self._check_silence(t)
            tick = self._position_now(t)
            bpm = 60.0 / (self._period * TICKS_PER_QUARTER)
            locked = self._source == "midi" and self._running and self._ticks_since_reset >= self.lock_ticks
            running, source = self._running, self._source
            ticks, lost = self.ticks, self.lost_ticks
        whole = int(math.floor(tick + 1e-9))
        bar = whole // meter.ticks_per_bar + 1
        beat = (whole % meter.ticks_per_bar) // meter.ticks_per_beat + 1
        return ClockSnapshot(bpm, running, tick, source, locked, bar, beat, t, ticks, lost)
