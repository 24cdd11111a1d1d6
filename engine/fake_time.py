"""Driving a Session on fake time, tick by tick, the way the live runner does: the phrase's events enter
at their ticks, `advance` runs every tick, withdrawn material is dropped. What the demo, the benchmarks
and the tests use to hear what the live engine would play, with no ports and no clock."""
from __future__ import annotations

from .events import Note
from .session import Output, Session


def simulate(session: Session, phrase: list[Note], until_tick: int, reflexes: bool = False) -> list[Note]:
    """Plays `phrase` into `session` up to `until_tick`, then stops it; returns Antiphon's notes as they
    would have sounded (scheduled and not withdrawn). With `reflexes`, as the native JACK client plays the
    accompaniment: the reaction armed ahead (Session.reflexes) sounds at the player's note, and the session
    plays on from it."""
    events = sorted([(n.start, 1, n.pitch, n.velocity) for n in phrase] + [(n.end, 0, n.pitch, 0) for n in phrase])
    scheduled: list[tuple[int, int, int]] = []
    i = 0
    for now in range(until_tick + 1):
        while i < len(events) and events[i][0] <= now:
            tick, on, pitch, vel = events[i]
            if on and reflexes:
                scheduled = _take_reflex(scheduled, session, tick, pitch, vel)
            else:
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


def _take_reflex(scheduled: list[tuple[int, int, int]], session: Session, tick: int, pitch: int,
                 velocity: int) -> list[tuple[int, int, int]]:
    """A player's note-on answered by the armed reaction, where the table holds for its tick: the reaction
    sounds first (after the withdrawal of what was scheduled from the note's tick on); a note of it the
    session ends at once never sounds."""
    table = session.reflexes()
    at = tick + session.offset
    reaction = table.reactions[pitch] if table is not None and table.first_tick <= at <= table.last_tick else None
    out = session.note_on(tick, pitch, velocity, reflex=reaction)
    if out.cancel_from is not None:
        scheduled = [e for e in scheduled if e[0] < out.cancel_from]
    ended = {n.pitch for n in out.notes if not n.velocity and n.tick == at}
    scheduled += [(at, q, v) for q, v in reaction or () if not (v and q in ended)]
    return scheduled + [(n.tick, n.pitch, n.velocity) for n in out.notes]
