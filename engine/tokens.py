"""The event vocabulary: note-on(pitch), note-off(pitch), time-shift(ticks), velocity(bin).

Time is musical: ticks at 24 per quarter. Every sequence has one canonical encoding: at a tick,
note-offs come first in ascending pitch, then note-ons in ascending pitch, each note-on preceded by a
velocity token when its velocity bin differs from the current one; silences longer than MAX_SHIFT
chain MAX_SHIFT shifts. `Grammar` tracks that order, so `Grammar.mask()` allows exactly the tokens a
canonical sequence could continue with: likelihoods need no other normalisation and sampling never
produces an invalid stream.

Besides the token, the model reads the metrical position: the tick within the bar reached after the
token (see `Grammar.position`).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Iterable

import numpy as np

from .events import Meter, Note

N_PITCHES = 128
MAX_SHIFT = 96  # ticks: four quarters
N_VELOCITY_BINS = 16
N_POSITIONS = 192  # ticks in the longest bar we support (8 quarters)
DEFAULT_VELOCITY = 80

# Who plays a token, for models that read it (ModelConfig.role_input): one stream with nobody named (music
# as one part; time shifts and BOS always), the player's notes, the band's (the accompaniment's) notes.
ROLE_NONE, ROLE_PLAYER, ROLE_BAND = 0, 1, 2
N_ROLES = 3

BOS = 0
NOTE_ON = 1
NOTE_OFF = NOTE_ON + N_PITCHES
TIME_SHIFT = NOTE_OFF + N_PITCHES  # TIME_SHIFT + k - 1 shifts k ticks, k = 1..MAX_SHIFT
VELOCITY = TIME_SHIFT + MAX_SHIFT
VOCAB_SIZE = VELOCITY + N_VELOCITY_BINS

VOCABULARY = {
    "bos": BOS,
    "note_on": [NOTE_ON, N_PITCHES],
    "note_off": [NOTE_OFF, N_PITCHES],
    "time_shift": [TIME_SHIFT, MAX_SHIFT],
    "velocity": [VELOCITY, N_VELOCITY_BINS],
    "size": VOCAB_SIZE,
    "ticks_per_quarter": 24,
    "positions": N_POSITIONS,
}


def velocity_bin(velocity: int) -> int:
    return min(N_VELOCITY_BINS - 1, max(0, (int(velocity) - 1) * N_VELOCITY_BINS // 127))


def bin_velocity(b: int) -> int:
    """The velocity a bin plays at: the middle of its range."""
    lo = -(-b * 127 // N_VELOCITY_BINS) + 1
    hi = -(-(b + 1) * 127 // N_VELOCITY_BINS)
    return (lo + hi) // 2


DEFAULT_BIN = velocity_bin(DEFAULT_VELOCITY)


def describe(token: int) -> str:
    if token == BOS:
        return "BOS"
    if NOTE_ON <= token < NOTE_OFF:
        return f"ON{token - NOTE_ON}"
    if NOTE_OFF <= token < TIME_SHIFT:
        return f"OFF{token - NOTE_OFF}"
    if TIME_SHIFT <= token < VELOCITY:
        return f"T{token - TIME_SHIFT + 1}"
    if VELOCITY <= token < VOCAB_SIZE:
        return f"V{token - VELOCITY}"
    raise ValueError(f"token {token} outside the vocabulary of {VOCAB_SIZE}")


@dataclass
class NoteEvent:
    """What a note token means at the grammar's tick."""

    tick: int
    pitch: int
    velocity: int  # 0 for a note-off


class Grammar:
    """Follows a token stream: the tick, the sounding pitches, the canonical order within a tick."""

    def __init__(self, meter: Meter = Meter(), bar_origin: int = 0):
        self.meter = meter
        self.bar_origin = bar_origin
        self.tick = 0
        self.sounding = np.zeros(N_PITCHES, dtype=bool)
        self.onset = np.zeros(N_PITCHES, dtype=np.int64)  # tick each sounding pitch started
        self.bin = DEFAULT_BIN
        self.last = BOS
        self._last_off = -1  # highest pitch switched off at this tick
        self._last_on = -1  # highest pitch switched on at this tick
        self._any_on = False  # a note-on happened at this tick: no more note-offs
        self._pitches = np.arange(N_PITCHES)

    def copy(self) -> "Grammar":
        g = Grammar.__new__(Grammar)
        g.__dict__.update(self.__dict__)
        g.sounding = self.sounding.copy()
        g.onset = self.onset.copy()
        return g

    def copy_from(self, other: "Grammar") -> None:
        """Becomes `other` in place (so that objects holding this grammar see the restored one)."""
        sounding, onset = self.sounding, self.onset
        self.__dict__.update(other.__dict__)
        np.copyto(sounding, other.sounding)
        np.copyto(onset, other.onset)
        self.sounding, self.onset = sounding, onset

    @property
    def position(self) -> int:
        """Tick within the bar, the model's metrical input."""
        return min((self.tick - self.bar_origin) % self.meter.ticks_per_bar, N_POSITIONS - 1)

    def mask(self) -> np.ndarray:
        allowed = np.zeros(VOCAB_SIZE, dtype=bool)
        ons = ~self.sounding & (self._pitches > self._last_on)
        allowed[NOTE_ON:NOTE_OFF] = ons
        if VELOCITY <= self.last < VOCAB_SIZE:
            return allowed  # a velocity token is always followed by its note-on
        if not self._any_on:
            allowed[NOTE_OFF:TIME_SHIFT] = self.sounding & (self._pitches > self._last_off)
        if not (TIME_SHIFT <= self.last < VELOCITY and self.last != TIME_SHIFT + MAX_SHIFT - 1):
            allowed[TIME_SHIFT:VELOCITY] = True
        if ons.any():
            allowed[VELOCITY:VOCAB_SIZE] = True
            allowed[VELOCITY + self.bin] = False
        return allowed

    def is_allowed(self, token: int) -> bool:
        return bool(self.mask()[token])

    def apply(self, token: int) -> NoteEvent | None:
        """Advances past `token`; returns the note event it plays, if any. Raises on an invalid token."""
        token = int(token)
        if NOTE_ON <= token < NOTE_OFF:
            p = token - NOTE_ON
            if self.sounding[p] or p <= self._last_on:
                raise ValueError(f"note-on {p} out of order at tick {self.tick}")
            self.sounding[p] = True
            self.onset[p] = self.tick
            self._last_on = p
            self._any_on = True
            event = NoteEvent(self.tick, p, bin_velocity(self.bin))
        elif NOTE_OFF <= token < TIME_SHIFT:
            p = token - NOTE_OFF
            if not self.sounding[p] or self._any_on or p <= self._last_off:
                raise ValueError(f"note-off {p} out of order at tick {self.tick}")
            self.sounding[p] = False
            self._last_off = p
            event = NoteEvent(self.tick, p, 0)
        elif TIME_SHIFT <= token < VELOCITY:
            self.tick += token - TIME_SHIFT + 1
            self._last_off = self._last_on = -1
            self._any_on = False
            event = None
        elif VELOCITY <= token < VOCAB_SIZE:
            self.bin = token - VELOCITY
            event = None
        elif token == BOS:
            event = None
        else:
            raise ValueError(f"token {token} outside the vocabulary of {VOCAB_SIZE}")
        self.last = token
        return event


def shift_tokens(ticks: int) -> list[int]:
    """The canonical chain of time-shift tokens for a gap of `ticks` (>= 0)."""
    out = [TIME_SHIFT + MAX_SHIFT - 1] * (ticks // MAX_SHIFT)
    if ticks % MAX_SHIFT:
        out.append(TIME_SHIFT + ticks % MAX_SHIFT - 1)
    return out


def clean_notes(notes: Iterable[Note]) -> list[Note]:
    """Makes a note list encodable: pitches 0..127, length >= 1 tick, same-pitch overlaps cut."""
    by_pitch: dict[int, list[Note]] = {}
    for n in notes:
        if 0 <= n.pitch < N_PITCHES and n.start >= 0:
            vel = min(127, max(1, int(n.velocity)))
            by_pitch.setdefault(n.pitch, []).append(Note(n.start, max(n.end, n.start + 1), n.pitch, vel))
    out: list[Note] = []
    for pitch, group in by_pitch.items():
        group.sort(key=lambda n: (n.start, n.end))
        for a, b in zip(group, group[1:] + [None]):
            if b is not None and b.start == a.start:
                continue  # two onsets at one tick: the later-ending copy (sorted after) wins
            end = a.end if b is None else min(a.end, b.start)
            out.append(Note(a.start, end, pitch, a.velocity))
    out.sort()
    return out


def _note_arrays(notes: Iterable[Note], voices: Iterable[int] | None = None) -> tuple[np.ndarray, ...]:
    """clean_notes as arrays (start, end, pitch, velocity, voice), vectorised: the reader's hot path.
    `voices`: each note's part (see encode_voices); -1 for every note when left out."""
    arr = np.array([(n.start, n.end, n.pitch, n.velocity) for n in notes], dtype=np.int64).reshape(-1, 4)
    start, end, pitch, vel = arr.T
    voice = np.full(len(start), -1, np.int64) if voices is None else np.asarray(list(voices), dtype=np.int64)
    if len(voice) != len(start):
        raise ValueError(f"{len(voice)} voices for {len(start)} notes")
    keep = (pitch >= 0) & (pitch < N_PITCHES) & (start >= 0)
    start, end, pitch, vel, voice = start[keep], end[keep], pitch[keep], np.clip(vel[keep], 1, 127), voice[keep]
    end = np.maximum(end, start + 1)
    order = np.lexsort((end, start, pitch))
    start, end, pitch, vel, voice = start[order], end[order], pitch[order], vel[order], voice[order]
    same_next = np.zeros(len(pitch), dtype=bool)
    same_next[:-1] = pitch[1:] == pitch[:-1]
    next_start = np.empty_like(start)
    next_start[:-1] = start[1:]
    dup = same_next & (next_start == start)  # two onsets at one tick: the later-ending copy wins
    cut = same_next & ~dup
    end = np.where(cut, np.minimum(end, next_start), end)
    keep = ~dup
    return start[keep], end[keep], pitch[keep], vel[keep], voice[keep]


def encode_notes(notes: Iterable[Note], meter: Meter = Meter()) -> tuple[np.ndarray, np.ndarray]:
    """Notes -> (tokens, positions), starting with BOS.
    positions[i] is the bar position after token i. Vectorised; equal to feeding the events one by
    one through StreamEncoder (tested)."""
    tokens, positions, _ = _encode(notes, meter, None)
    return tokens, positions


def encode_voices(notes: Iterable[Note], voices: Iterable[int], meter: Meter = Meter()) -> tuple[np.ndarray, ...]:
    """encode_notes, plus each token's voice (int8): the part (0, 1, ...) that plays the note a note-on or
    note-off token stands for, a velocity token taking its note-on's; -1 for time shifts and BOS.
    `voices` gives each note's part, in the order of `notes`."""
    return _encode(notes, meter, voices)


def _encode(notes, meter: Meter, voices) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    start, end, pitch, vel, voice = _note_arrays(notes, voices)
    n = len(start)
    # events: note-offs (kind 0) before note-ons (kind 1) at a tick, each ascending by pitch
    tick = np.concatenate([end, start])
    kind = np.concatenate([np.zeros(n, np.int64), np.ones(n, np.int64)])
    evp = np.concatenate([pitch, pitch])
    evv = np.concatenate([np.zeros(n, np.int64), vel])
    evvoice = np.concatenate([voice, voice])
    order = np.lexsort((evp, kind, tick))
    tick, kind, evp, evv, evvoice = tick[order], kind[order], evp[order], evv[order], evvoice[order]
    # a time-shift chain before the first event of each new tick
    prev_tick = np.concatenate([[0], tick[:-1]])
    gap = tick - prev_tick
    n_shift = gap // MAX_SHIFT + (gap % MAX_SHIFT > 0)
    # a velocity token before a note-on whose bin differs from the previous note-on's
    bins = np.where(kind == 1, (np.clip(evv, 1, 127) - 1) * N_VELOCITY_BINS // 127, -1)
    on_bins = bins[kind == 1]
    prev_bin = np.concatenate([[DEFAULT_BIN], on_bins[:-1]])
    needs_vel = np.zeros(len(kind), dtype=bool)
    needs_vel[kind == 1] = on_bins != prev_bin
    per_event = n_shift + needs_vel + 1
    total = 1 + int(per_event.sum())
    tokens = np.empty(total, dtype=np.int64)
    tokens[0] = BOS
    ends = 1 + np.cumsum(per_event)  # one past each event's own token
    event_pos = ends - 1
    tokens[event_pos] = np.where(kind == 1, NOTE_ON + evp, NOTE_OFF + evp)
    vel_pos = event_pos[needs_vel] - 1
    tokens[vel_pos] = VELOCITY + bins[needs_vel]
    # shift chains: full MAX_SHIFT tokens then the remainder, right before the (velocity and) event
    has_shift = n_shift > 0
    chain_start = (event_pos - needs_vel - n_shift)[has_shift]
    counts = n_shift[has_shift]
    rem = (gap % MAX_SHIFT)[has_shift]
    idx = np.repeat(chain_start, counts) + (np.arange(counts.sum()) - np.repeat(np.cumsum(counts) - counts, counts))
    tokens[idx] = TIME_SHIFT + MAX_SHIFT - 1
    last_in_chain = chain_start + counts - 1
    tokens[last_in_chain[rem > 0]] = TIME_SHIFT + rem[rem > 0] - 1
    # the tick after each token, then its place in the bar
    is_shift = (tokens >= TIME_SHIFT) & (tokens < VELOCITY)
    ticks = np.cumsum(np.where(is_shift, tokens - TIME_SHIFT + 1, 0))
    positions = np.minimum(ticks % meter.ticks_per_bar, N_POSITIONS - 1)
    token_voices = np.full(total, -1, dtype=np.int8)
    token_voices[event_pos] = evvoice
    token_voices[vel_pos] = evvoice[needs_vel]
    return tokens.astype(np.int16), positions.astype(np.uint8), token_voices


def decode_tokens(tokens: Iterable[int], meter: Meter = Meter(), release_at_end: bool = True) -> list[Note]:
    """Tokens -> notes. Invalid tokens raise ValueError. Notes still sounding end at the last tick
    (at least one tick after their start) when `release_at_end`."""
    grammar = Grammar(meter)
    open_notes: dict[int, tuple[int, int]] = {}
    notes: list[Note] = []
    for tok in tokens:
        ev = grammar.apply(tok)
        if ev is None:
            continue
        if ev.velocity:
            open_notes[ev.pitch] = (ev.tick, ev.velocity)
        else:
            start, vel = open_notes.pop(ev.pitch)
            notes.append(Note(start, ev.tick, ev.pitch, vel))
    if release_at_end:
        for p, (start, vel) in open_notes.items():
            notes.append(Note(start, max(grammar.tick, start + 1), p, vel))
    notes.sort()
    return notes


def positions_for(tokens: Iterable[int], meter: Meter = Meter()) -> np.ndarray:
    """The bar positions that go with a token sequence (for sequences built without encode_notes)."""
    grammar = Grammar(meter)
    out = []
    for tok in tokens:
        grammar.apply(tok)
        out.append(grammar.position)
    return np.asarray(out, dtype=np.uint8)


def transpose_tokens(tokens: np.ndarray, semitones: int) -> np.ndarray | None:
    """Shifts every note token by `semitones`; None if a pitch would leave 0..127."""
    tokens = np.asarray(tokens)
    on = (tokens >= NOTE_ON) & (tokens < NOTE_OFF)
    off = (tokens >= NOTE_OFF) & (tokens < TIME_SHIFT)
    notes = on | off
    if not notes.any():
        return tokens.copy()
    pitches = np.where(on, tokens - NOTE_ON, tokens - NOTE_OFF)[notes] + semitones
    if pitches.min() < 0 or pitches.max() >= N_PITCHES:
        return None
    out = tokens.copy()
    out[notes] = tokens[notes] + semitones
    return out


class StreamEncoder:
    """Encodes live events one at a time into canonical tokens.

    Events at a tick are held until time moves past that tick, then emitted in canonical order
    (note-offs, then note-ons, ascending). A note-off for a pitch struck at the same tick waits one
    tick, so every note lasts at least one tick. `grammar` may be shared with another writer into the
    same stream (the generator in accompaniment mode); both stay canonical. `sink` receives each token
    (default: the grammar itself; the live session passes the generator, which steps the model).
    """

    def __init__(self, grammar: Grammar, sink=None):
        self.grammar = grammar
        self.sink = sink or grammar.apply  # called with each token; must advance `grammar`
        self._tick: int | None = None
        self._offs: set[int] = set()
        self._ons: dict[int, int] = {}
        self._deferred_offs: set[int] = set()

    @property
    def pending(self) -> bool:
        return self._tick is not None

    def note_on(self, tick: int, pitch: int, velocity: int) -> list[int]:
        if velocity <= 0:
            return self.note_off(tick, pitch)
        out = self._roll_to(tick)
        if self.grammar.sounding[pitch]:
            self._offs.add(pitch)  # a re-strike of a held pitch: release it first
        self._ons[pitch] = velocity
        return out

    def note_off(self, tick: int, pitch: int) -> list[int]:
        out = self._roll_to(tick)
        if pitch in self._ons:
            self._deferred_offs.add(pitch)
        elif self.grammar.sounding[pitch]:
            self._offs.add(pitch)
        return out

    def advance(self, tick: int) -> list[int]:
        """Emits everything held for ticks before `tick`. Silence itself emits nothing: the shift
        comes with the next event, so the stream stays canonical (one chain per gap)."""
        out = []
        while self._tick is not None and self._tick < tick:
            out += self._emit_pending()
        return out

    def shift_to(self, tick: int) -> list[int]:
        """Emits what is held, then the time-shifts that bring the stream to `tick` (e.g. an answer's
        first beat)."""
        return self.advance(tick) + (self._shift_to(tick) if self._tick is None else [])

    def flush(self) -> list[int]:
        """Emits everything held, whatever its tick."""
        out = []
        while self._tick is not None:
            out += self._emit_pending()
        return out

    def _roll_to(self, tick: int) -> list[int]:
        if self._tick is None:
            self._tick = max(tick, self.grammar.tick)
            return []
        out = []
        while self._tick is not None and tick > self._tick:
            out += self._emit_pending()
        if self._tick is None:
            self._tick = max(tick, self.grammar.tick)
        return out

    def emit_tick(self, before) -> list[int]:
        """Emits what is held for its tick, calling `before(token)` just before each of the player's
        tokens (a note-off, or the velocity-and-note-on of a note-on) and `before(None)` once they are all
        in: the other writer's tokens that `before` feeds into the stream land in canonical order around
        them (the accompaniment placing its notes of this tick). Returns the player's tokens."""
        if self._tick is None:
            return []
        return self._emit_pending(before)

    def move_to(self, tick: int) -> list[int]:
        """The time-shifts that bring the stream to `tick`, leaving what is held (at `tick` or later) held."""
        return self._shift_to(tick)

    def pending_state(self) -> tuple:
        """What is held (for a checkpoint): restore with `restore_pending`."""
        return self._tick, set(self._offs), dict(self._ons), set(self._deferred_offs)

    def restore_pending(self, state: tuple) -> None:
        self._tick, offs, ons, deferred = state
        self._offs, self._ons, self._deferred_offs = set(offs), dict(ons), set(deferred)

    def _emit_pending(self, before=None) -> list[int]:
        tick = self._tick
        out = self._shift_to(tick)
        for p in sorted(self._offs):
            if before is not None:
                before(NOTE_OFF + p)
            if self.grammar.sounding[p] and p > self.grammar._last_off and not self.grammar._any_on:
                out.append(self._apply(NOTE_OFF + p))
        late_ons = {}
        for p in sorted(self._ons):
            if before is not None and not self.grammar.sounding[p] and p > self.grammar._last_on:
                before(NOTE_ON + p)
            if self.grammar.sounding[p]:
                continue  # the other writer already plays this pitch
            if p <= self.grammar._last_on:
                late_ons[p] = self._ons[p]  # the other writer got past it at this tick: next tick
                continue
            b = velocity_bin(self._ons[p])
            if b != self.grammar.bin:
                out.append(self._apply(VELOCITY + b))
            out.append(self._apply(NOTE_ON + p))
        if before is not None:
            before(None)
        if self._deferred_offs or late_ons:
            self._tick, self._offs, self._ons = tick + 1, self._deferred_offs, late_ons
            self._deferred_offs = set()
        else:
            self._tick, self._offs, self._ons = None, set(), {}
        return out

    def _shift_to(self, tick: int) -> list[int]:
        if tick <= self.grammar.tick:
            return []
        return [self._apply(t) for t in shift_tokens(tick - self.grammar.tick)]

    def _apply(self, token: int) -> int:
        self.sink(token)
        return token
