"""Planning an answer: K whole candidate continuations sampled at once from the listened state.

The planner forks the generator's stream K times (one batched LSTM step per token for all of them, see
StepRuntime.step_batch) and samples each candidate until its stream reaches the answer's end, with the
live rules: the grammar, the sampling parameters, the polyphony cap and the release of notes held past
`max_note_ticks`. It keeps every candidate's tokens, its notes and the model's own log-likelihood of it,
for the critic to choose from. `run(budget_s)` works in slices, so the live engine can plan during the
silence before the answer without holding its thread.
"""
from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np

from .events import Note
from .generator import Generator
from .grammar_batch import GrammarBatch
from .sampler import BatchSampler, SamplingParams
from .tokens import NOTE_OFF, NOTE_ON, TIME_SHIFT


@dataclass
class Candidate:
    tokens: list[int]
    notes: list[Note]  # stream ticks; notes still sounding at the answer's end end there
    log_likelihood: float  # the model's own, at temperature 1 under the grammar mask, summed over tokens

    @property
    def per_token(self) -> float:
        return self.log_likelihood / max(1, len(self.tokens))


class Planner:
    def __init__(self, gen: Generator, k: int, until_tick: int, params: SamplingParams, rng: np.random.Generator,
                 max_polyphony: int = 8, max_note_ticks: int = 192, max_tokens: int = 4096):
        self.runtime = gen.runtime
        self.k = k
        self.until = int(until_tick)
        self.params = params
        self.max_polyphony = max_polyphony
        self.max_note_ticks = max_note_ticks
        self.max_tokens = max_tokens
        self.sampler = BatchSampler(rng)
        self.grammar = GrammarBatch(gen.grammar, k)
        self.state = self.runtime.fork(gen.state, k, max_tokens=256)
        self.logits = np.repeat(np.asarray(gen.logits, dtype=np.float32)[None], k, axis=0)
        self.start_tick = gen.grammar.tick
        self.tokens = np.zeros((k, 256), dtype=np.int64)
        self.steps = 0
        self.loglik = np.zeros(k)
        self.length = np.zeros(k, dtype=np.int64)  # tokens each candidate holds (it stops at the end)
        self.active = self.grammar.tick < self.until
        self.started = np.full((k, 128), -1, dtype=np.int64)  # tick each of the candidate's own notes began
        self.velocity = np.zeros((k, 128), dtype=np.int64)
        self.notes: list[list[Note]] = [[] for _ in range(k)]
        self.seconds = 0.0
        self._rows = np.arange(k)

    @property
    def done(self) -> bool:
        return not self.active.any() or self.steps >= self.max_tokens

    def run(self, budget_s: float | None = None) -> bool:
        """Steps until every candidate reaches the answer's end (or `budget_s` seconds pass); True when done."""
        t0 = time.perf_counter()
        while not self.done:
            self.step()
            if budget_s is not None and time.perf_counter() - t0 >= budget_s:
                break
        self.seconds += time.perf_counter() - t0
        return self.done

    def step(self) -> None:
        g = self.grammar
        masks = g.masks()
        crowded = g.sounding.sum(axis=1) >= self.max_polyphony
        if crowded.any():
            capped = masks.copy()
            capped[crowded, NOTE_ON:NOTE_OFF] = False
            keep = capped.any(axis=1)
            masks[keep] = capped[keep]
        tokens = self.sampler.sample(self.logits, masks, self.params)
        expired = (self.started >= 0) & (g.tick[:, None] - self.started >= self.max_note_ticks) & \
            masks[:, NOTE_OFF:TIME_SHIFT]
        forced = expired.any(axis=1)
        if forced.any():  # a note held too long ends first thing at this tick, as in the live session
            tokens[forced] = NOTE_OFF + np.argmax(expired[forced], axis=1)
        z = np.where(masks, self.logits.astype(np.float64), -np.inf)
        top = z.max(axis=1)
        lse = top + np.log(np.exp(z - top[:, None]).sum(axis=1))
        active = self.active
        self.loglik[active] += (z[self._rows, tokens] - lse)[active]
        if self.steps == self.tokens.shape[1]:
            self.tokens = np.concatenate([self.tokens, np.zeros_like(self.tokens)], axis=1)
        self.tokens[:, self.steps] = tokens
        self.length[active] += 1
        self.steps += 1
        tick_before = g.tick.copy()
        pitch, velocity = g.apply(tokens)
        self._keep_notes(pitch, velocity, tick_before, active)
        self.active = active & (g.tick < self.until)
        self.logits = self.runtime.step_batch(tokens, g.positions, self.state)

    def _keep_notes(self, pitch: np.ndarray, velocity: np.ndarray, tick: np.ndarray, active: np.ndarray) -> None:
        played = active & (pitch >= 0)
        for k in np.flatnonzero(played):
            p = int(pitch[k])
            if velocity[k]:
                self.started[k, p] = tick[k]
                self.velocity[k, p] = velocity[k]
            elif self.started[k, p] >= 0:
                self.notes[k].append(Note(int(self.started[k, p]), int(tick[k]), p, int(self.velocity[k, p])))
                self.started[k, p] = -1

    def candidates(self) -> list[Candidate]:
        out = []
        for k in range(self.k):
            notes = list(self.notes[k])
            for p in np.flatnonzero(self.started[k] >= 0):
                start = int(self.started[k, p])
                notes.append(Note(start, max(self.until, start + 1), int(p), int(self.velocity[k, p])))
            out.append(Candidate(self.tokens[k, :self.length[k]].tolist(), sorted(notes), float(self.loglik[k])))
        return out
