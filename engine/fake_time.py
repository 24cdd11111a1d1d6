"""Driving a Session on fake time, tick by tick, the way the live runner does: the phrase's events enter
at their ticks, `advance` runs every tick, withdrawn material is dropped. What the demo, the benchmarks
and the tests use to hear what the live engine would play, with no ports and no clock."""
from __future__ import annotations

from .events import Note
from .session import Output, Session


def simulate(session: Session, phrase: list[Note], until_tick: int) -> list[Note]:
    """Plays `phrase` into `session` up to `until_tick`, then stops it; returns Antiphon's notes as they
    would have sounded (scheduled and not withdrawn)."""
    events = sorted([(n.start, 1, n.pitch, n.velocity) for n in phrase] + [(n.end, 0, n.pitch, 0) for n in phrase])
    scheduled: list[tuple[int, int, int]] = []
    i = 0
    for now in range(until_tick + 1):
        while i < len(events) and events[i][0] <= now:
            tick, on, pitch, vel = events[i]
            out = session.note_on(tick, pitch, vel) if on else session.note_off(tick, pitch)
            scheduled = _take(scheduled, out)
            i += 1
        scheduled = _take(scheduled, session.advance(now))
    scheduled = _take(scheduled, session.stop())
    return notes_of(scheduled)


def notes_of(scheduled: list[tuple[int, int, int]]) -> list[Note]:
    """(tick, pitch, velocity) events, note-offs first at a tick -> notes."""
    open_notes: dict[int, tuple[int, int]] = {}
    notes = []
    for tick, pitch, vel in sorted(scheduled, key=lambda e: (e[0], e[2] > 0)):
        if vel:
            open_notes.setdefault(pitch, (tick, vel))
        elif pitch in open_notes:
            start, v = open_notes.pop(pitch)
            if tick > start:
                notes.append(Note(start, tick, pitch, v))
    return sorted(notes)


def _take(scheduled: list[tuple[int, int, int]], out: Output) -> list[tuple[int, int, int]]:
    if out.cancel_from is not None:
        scheduled = [e for e in scheduled if e[0] < out.cancel_from]
    return scheduled + [(n.tick, n.pitch, n.velocity) for n in out.notes]
