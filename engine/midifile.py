"""Standard MIDI files from notes in ticks: one track per part, a tempo and a meter, 480 PPQ."""
from __future__ import annotations

from pathlib import Path

import mido

from .events import TICKS_PER_QUARTER, Meter, Note

PPQ = 480
SCALE = PPQ // TICKS_PER_QUARTER


def note_messages(notes: list[Note], channel: int = 0) -> list[tuple[int, mido.Message]]:
    """(absolute file tick, message) pairs, note-offs before note-ons at the same tick."""
    events = []
    for n in notes:
        events.append((n.start * SCALE, 1, mido.Message("note_on", channel=channel, note=n.pitch, velocity=n.velocity)))
        events.append((n.end * SCALE, 0, mido.Message("note_off", channel=channel, note=n.pitch, velocity=0)))
    events.sort(key=lambda e: (e[0], e[1], e[2].note))
    return [(t, m) for t, _, m in events]


def track_from(name: str, timed: list[tuple[int, mido.Message]], program: int | None = None,
               channel: int = 0) -> mido.MidiTrack:
    track = mido.MidiTrack()
    track.append(mido.MetaMessage("track_name", name=name, time=0))
    if program is not None:
        track.append(mido.Message("program_change", channel=channel, program=program, time=0))
    now = 0
    for t, msg in timed:
        track.append(msg.copy(time=t - now))
        now = t
    track.append(mido.MetaMessage("end_of_track", time=0))
    return track


def write_midi(path: str | Path, parts: list[tuple[str, list[Note]]], bpm: float = 120.0,
               meter: Meter = Meter(), programs: list[int] | None = None) -> mido.MidiFile:
    """parts: (track name, notes); part k plays on channel k, with General MIDI program `programs[k]`
    (0, the piano, where none is given)."""
    mid = mido.MidiFile(type=1, ticks_per_beat=PPQ)
    conductor = mido.MidiTrack()
    conductor.append(mido.MetaMessage("track_name", name="tempo", time=0))
    conductor.append(mido.MetaMessage("set_tempo", tempo=mido.bpm2tempo(bpm), time=0))
    conductor.append(mido.MetaMessage("time_signature", numerator=meter.numerator,
                                      denominator=meter.denominator, time=0))
    conductor.append(mido.MetaMessage("end_of_track", time=0))
    mid.tracks.append(conductor)
    for k, (name, notes) in enumerate(parts):
        ch = k % 16 if k % 16 != 9 else 10
        program = programs[k] if programs is not None and k < len(programs) else 0
        mid.tracks.append(track_from(name, note_messages(notes, ch), program=program, channel=ch))
    mid.save(str(path))
    return mid


def first_tempo(path: str | Path) -> float:
    """The first tempo of a MIDI file in BPM (120 if it sets none)."""
    for track in mido.MidiFile(str(path)).tracks:
        for msg in track:
            if msg.type == "set_tempo":
                return float(mido.tempo2bpm(msg.tempo))
    return 120.0
