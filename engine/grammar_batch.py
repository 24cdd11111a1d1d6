"""K token streams' grammars at once: the canonical order of engine/tokens.Grammar, vectorised over streams,
so that a planner sampling K candidate answers masks and advances them with a few array operations per
token instead of K Python objects. Stream k of a GrammarBatch behaves exactly as a Grammar fed the same
tokens (tested)."""
from __future__ import annotations

import numpy as np

from .events import Meter
from .tokens import (MAX_SHIFT, N_PITCHES, N_POSITIONS, NOTE_OFF, NOTE_ON, TIME_SHIFT, VELOCITY, VOCAB_SIZE,
                     Grammar, bin_velocity)

_PITCHES = np.arange(N_PITCHES)
_VELOCITIES = np.array([bin_velocity(b) for b in range(VOCAB_SIZE - VELOCITY)])


class GrammarBatch:
    def __init__(self, grammar: Grammar, k: int):
        """K copies of `grammar` (its state now)."""
        self.meter: Meter = grammar.meter
        self.bar_origin = grammar.bar_origin
        self.k = k
        self.tick = np.full(k, grammar.tick, dtype=np.int64)
        self.sounding = np.repeat(grammar.sounding[None], k, axis=0)
        self.onset = np.repeat(grammar.onset[None], k, axis=0)
        self.bin = np.full(k, grammar.bin, dtype=np.int64)
        self.last = np.full(k, grammar.last, dtype=np.int64)
        self.last_off = np.full(k, grammar._last_off, dtype=np.int64)
        self.last_on = np.full(k, grammar._last_on, dtype=np.int64)
        self.any_on = np.full(k, grammar._any_on, dtype=bool)
        self._rows = np.arange(k)

    @property
    def positions(self) -> np.ndarray:
        """Each stream's bar position (the model's metrical input), as Grammar.position."""
        return np.minimum((self.tick - self.bar_origin) % self.meter.ticks_per_bar, N_POSITIONS - 1)

    def masks(self) -> np.ndarray:
        """(K, VOCAB_SIZE) bool: what each stream may continue with, as Grammar.mask."""
        k = self.k
        allowed = np.zeros((k, VOCAB_SIZE), dtype=bool)
        ons = ~self.sounding & (_PITCHES[None] > self.last_on[:, None])
        allowed[:, NOTE_ON:NOTE_OFF] = ons
        after_velocity = (self.last >= VELOCITY) & (self.last < VOCAB_SIZE)
        free = ~after_velocity
        offs = self.sounding & (_PITCHES[None] > self.last_off[:, None]) & (free & ~self.any_on)[:, None]
        allowed[:, NOTE_OFF:TIME_SHIFT] = offs
        shift_chained = (self.last >= TIME_SHIFT) & (self.last < VELOCITY) & (self.last != TIME_SHIFT + MAX_SHIFT - 1)
        allowed[:, TIME_SHIFT:VELOCITY] = (free & ~shift_chained)[:, None]
        has_on = ons.any(axis=1) & free
        allowed[:, VELOCITY:VOCAB_SIZE] = has_on[:, None]
        allowed[self._rows[has_on], VELOCITY + self.bin[has_on]] = False
        return allowed

    def apply(self, tokens: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Advances every stream past its token (which must be allowed). Returns (pitch, velocity) per
        stream of the note it plays: pitch -1 where the token plays none, velocity 0 for a note-off."""
        tokens = np.asarray(tokens, dtype=np.int64)
        rows = self._rows
        pitch = np.full(self.k, -1, dtype=np.int64)
        velocity = np.zeros(self.k, dtype=np.int64)
        on = (tokens >= NOTE_ON) & (tokens < NOTE_OFF)
        off = (tokens >= NOTE_OFF) & (tokens < TIME_SHIFT)
        shift = (tokens >= TIME_SHIFT) & (tokens < VELOCITY)
        vel = (tokens >= VELOCITY) & (tokens < VOCAB_SIZE)
        if on.any():
            r, p = rows[on], tokens[on] - NOTE_ON
            self.sounding[r, p] = True
            self.onset[r, p] = self.tick[on]
            self.last_on[on] = p
            self.any_on[on] = True
            pitch[on], velocity[on] = p, _VELOCITIES[self.bin[on]]
        if off.any():
            r, p = rows[off], tokens[off] - NOTE_OFF
            self.sounding[r, p] = False
            self.last_off[off] = p
            pitch[off] = p
        if shift.any():
            self.tick[shift] += tokens[shift] - TIME_SHIFT + 1
            self.last_off[shift] = -1
            self.last_on[shift] = -1
            self.any_on[shift] = False
        self.bin[vel] = tokens[vel] - VELOCITY
        self.last = tokens.copy()
        return pitch, velocity

    def keep(self, rows: np.ndarray) -> None:
        """Only these streams go on."""
        for name in ("tick", "sounding", "onset", "bin", "last", "last_off", "last_on", "any_on"):
            setattr(self, name, getattr(self, name)[rows])
        self.k = len(rows)
        self._rows = np.arange(self.k)

    def stream(self, k: int) -> Grammar:
        """Stream k as a Grammar of its own."""
        g = Grammar(self.meter, self.bar_origin)
        g.tick = int(self.tick[k])
        g.sounding = self.sounding[k].copy()
        g.onset = self.onset[k].copy()
        g.bin = int(self.bin[k])
        g.last = int(self.last[k])
        g._last_off, g._last_on, g._any_on = int(self.last_off[k]), int(self.last_on[k]), bool(self.any_on[k])
        return g
