"""Session recording: call and answer on separate tracks of a standard MIDI file, with the tempo map.

Events are appended as they happen (any thread; `add` only appends to a deque). `save` renders the
whole file and writes it atomically; the live runner saves once a second from its own thread, so a
crash loses at most the last second and the file on disk always opens.
"""
from __future__ import annotations

import threading
from collections import deque
from pathlib import Path

import mido

from .events import TICKS_PER_QUARTER, Meter
from .atomic import atomic_write_bytes

PPQ = 480
TRACKS = ("player", "antiphon")


class Recorder:
    def __init__(self, meter: Meter = Meter(), bpm: float = 120.0, channels=(0, 1)):
        self.meter = meter
        self.channels = dict(zip(TRACKS, channels))
        self._incoming: deque = deque()
        self._events: dict[str, list[tuple[int, bytes]]] = {t: [] for t in TRACKS}
        self._tempos: list[tuple[int, float]] = [(0, float(bpm))]
        self._lock = threading.Lock()
        self._sounding: dict[str, dict[int, int]] = {t: {} for t in TRACKS}

    def add(self, track: str, tick: float, msg: bytes) -> None:
        """A message at stream tick `tick` (24 per quarter, fractional allowed)."""
        self._incoming.append((track, tick, bytes(msg)))

    def tempo(self, tick: float, bpm: float) -> None:
        self._incoming.append(("tempo", tick, float(bpm)))

    def _drain(self) -> None:
        while self._incoming:
            track, tick, payload = self._incoming.popleft()
            t = max(0, int(round(tick * PPQ / TICKS_PER_QUARTER)))
            if track == "tempo":
                if abs(payload - self._tempos[-1][1]) >= 0.5:
                    self._tempos.append((max(t, self._tempos[-1][0]), payload))
                continue
            if track not in self._events or not payload or payload[0] < 0x80 or payload[0] >= 0xF0:
                continue
            kind = payload[0] & 0xF0
            ch = self.channels[track]
            msg = bytes([kind | ch]) + payload[1:3]
            if kind == 0x90 and len(msg) == 3 and msg[2] > 0:
                self._sounding[track][msg[1]] = t
            elif kind in (0x80, 0x90) and len(msg) == 3:
                self._sounding[track].pop(msg[1], None)
            self._events[track].append((t, msg))

    def render(self) -> mido.MidiFile:
        """The recording so far as a MIDI file; notes still sounding end at their track's last event."""
        with self._lock:
            self._drain()
            mid = mido.MidiFile(type=1, ticks_per_beat=PPQ)
            conductor = mido.MidiTrack()
            conductor.append(mido.MetaMessage("track_name", name="tempo", time=0))
            conductor.append(mido.MetaMessage("time_signature", numerator=self.meter.numerator,
                                              denominator=self.meter.denominator, time=0))
            now = 0
            for t, bpm in self._tempos:
                conductor.append(mido.MetaMessage("set_tempo", tempo=mido.bpm2tempo(bpm), time=t - now))
                now = t
            mid.tracks.append(conductor)
            for name in TRACKS:
                events = sorted(self._events[name], key=lambda e: e[0])
                end = events[-1][0] if events else 0
                tail = [(end, bytes([0x80 | self.channels[name], p, 0])) for p in self._sounding[name]]
                track = mido.MidiTrack()
                track.append(mido.MetaMessage("track_name", name="call (player)" if name == "player"
                                              else "answer (Antiphon)", time=0))
                now = 0
                for t, msg in events + tail:
                    track.append(mido.Message.from_bytes(msg, time=t - now))
                    now = t
                mid.tracks.append(track)
            return mid

    def save(self, path: str | Path) -> None:
        import io

        buf = io.BytesIO()
        self.render().save(file=buf)
        atomic_write_bytes(path, buf.getvalue())
