"""One token stream through the model: feed what was played, sample what comes next.

`Generator` owns the grammar, the LSTM state and the latest logits. Feeding and sampling are the same
operation seen from two sides, so listening and answering share one state: the answer continues
exactly what the model heard.
"""
from __future__ import annotations

import time
from collections import deque

import numpy as np

from .events import Meter, Note
from .runtime import StepRuntime, StepState
from .sampler import Sampler, SamplingParams
from .tokens import BOS, NOTE_ON, NOTE_OFF, ROLE_NONE, VELOCITY, VOCAB_SIZE, Grammar, NoteEvent, decode_tokens


class Generator:
    def __init__(self, runtime: StepRuntime, meter: Meter = Meter(), seed: int | None = None,
                 max_polyphony: int = 8):
        self.runtime = runtime
        self.player = None  # what the player sounds, as the runtime's player_gates: read with every step
        self.sampler = Sampler(seed)
        self.max_polyphony = max_polyphony
        self.meter = meter
        self.reset()

    def reset(self, bar_origin: int = 0) -> None:
        self.grammar = Grammar(self.meter, bar_origin)
        self.state: StepState = self.runtime.initial_state()
        self.logits = np.zeros(self.runtime.config.vocab_size, dtype=np.float32)
        self.tokens = 0
        self.step_s: deque[float] = deque(maxlen=64)  # recent step times, for the panel's readout
        self.feed(BOS)

    def feed(self, token: int, before_step=None, role: int = ROLE_NONE) -> NoteEvent | None:
        """Advances the stream past `token` (played or sampled, by `role`: tokens.ROLE_*); returns the note it
        plays, if any. `before_step(event)`, if given, hears that note before the model steps past it (so
        that it can go out first: the step is the costly part)."""
        event = self.grammar.apply(token)
        if before_step is not None:
            before_step(event)
        t0 = time.perf_counter()
        np.copyto(self.logits, self.runtime.step(int(token), self.grammar.position, self.state, role, self.player))
        self.step_s.append(time.perf_counter() - t0)
        self.tokens += 1
        return event

    @property
    def step_ms(self) -> float:
        """Median of the recent per-event steps, in ms."""
        return float(np.median(self.step_s)) * 1000 if self.step_s else 0.0

    def feed_all(self, tokens) -> None:
        for tok in tokens:
            self.feed(tok)

    def mask(self) -> np.ndarray:
        mask = self.grammar.mask()
        if self.grammar.sounding.sum() >= self.max_polyphony:
            mask[NOTE_ON:NOTE_OFF] = False
            mask[VELOCITY:VOCAB_SIZE] = False  # a velocity token is always followed by its note-on
            if not mask.any():
                mask = self.grammar.mask()
        return mask

    def sample(self, params: SamplingParams) -> tuple[int, NoteEvent | None]:
        token = self.sampler.sample(self.logits, self.mask(), params)
        return token, self.feed(token)

    def fork(self, seed: int | None = None) -> "Generator":
        """An independent copy of the stream so far (for variations or look-ahead)."""
        g = Generator.__new__(Generator)
        g.runtime, g.meter, g.max_polyphony = self.runtime, self.meter, self.max_polyphony
        g.player = self.player
        g.sampler = Sampler(seed)
        g.grammar = self.grammar.copy()
        g.state = self.state.copy()
        g.logits = self.logits.copy()
        g.tokens, g.step_s = self.tokens, deque(self.step_s, maxlen=64)
        return g


def continue_notes(gen: Generator, until_tick: int, params: SamplingParams, max_tokens: int = 100_000) -> list[Note]:
    """Samples until the stream reaches `until_tick`; notes still sounding then end there."""
    open_notes: dict[int, tuple[int, int]] = {}
    notes: list[Note] = []
    for _ in range(max_tokens):
        if gen.grammar.tick >= until_tick:
            break
        _, ev = gen.sample(params)
        if ev is None:
            continue
        if ev.velocity:
            open_notes[ev.pitch] = (ev.tick, ev.velocity)
        elif ev.pitch in open_notes:
            start, vel = open_notes.pop(ev.pitch)
            notes.append(Note(start, ev.tick, ev.pitch, vel))
    end = max(gen.grammar.tick, until_tick)
    for p, (start, vel) in open_notes.items():
        notes.append(Note(start, max(end, start + 1), p, vel))
    return sorted(notes)


def prime(gen: Generator, notes: list[Note]) -> None:
    """Feeds a whole phrase into the stream (offline priming)."""
    from .tokens import encode_notes

    tokens, _ = encode_notes(notes, gen.meter)
    gen.feed_all(int(t) for t in tokens[1:])


__all__ = ["Generator", "continue_notes", "prime", "decode_tokens"]
