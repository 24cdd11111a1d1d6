"""Planning an answer: K whole candidate continuations sampled at once from the listened state.

The planner forks the generator's stream K times (one batched LSTM step per token for all of them, see
StepRuntime.step_batch) and samples each candidate until its stream reaches the answer's end, with the
live rules: the grammar, the sampling parameters, the polyphony cap and the release of notes held past
`max_note_ticks`. A candidate's melody never loops: after 7 melody notes (the top note of each onset) on
two pitches or fewer, neither of those pitches may be the next one. It keeps every candidate's tokens, its
notes and the model's own log-likelihood of it, for the critic to choose from. `run(budget_s)` works in
slices, so the live engine can plan during the silence before the answer without holding its thread.
"""
from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np

from .answer_measures import LOOP_NOTES
from .events import Note
from .generator import Generator
from .grammar_batch import GrammarBatch
from .sampler import BatchSampler, SamplingParams
from .tokens import NOTE_OFF, NOTE_ON, TIME_SHIFT, VELOCITY, VOCAB_SIZE


@dataclass
class Candidate:
    tokens: list[int]
    notes: list[Note]  # stream ticks; notes still sounding at the answer's end end there
    log_likelihood: float  # the model's own, at temperature 1 under the grammar mask, summed over tokens
    finished: bool = True  # reached the answer's end (False: a plan cut at its deadline, this far)

    @property
    def per_token(self) -> float:
        return self.log_likelihood / max(1, len(self.tokens))


class Planner:
    def __init__(self, gen: Generator, k: int, until_tick: int, params: SamplingParams, rng: np.random.Generator,
                 max_polyphony: int = 8, max_note_ticks: int = 192, max_tokens: int = 4096,
                 laggard_factor: float = 1.5, stepper=None, bias: np.ndarray | None = None):
        """`stepper`: what steps the K streams (default the generator's runtime; see engine/torch_step.py).
        `bias`: added to the logits when sampling (not to the likelihood the critic reads): a tilt towards
        the call's pitch classes (see `pitch_class_bias`)."""
        self.runtime = stepper or gen.runtime
        self.k = k
        self.until = int(until_tick)
        self.params = params
        self.max_polyphony = max_polyphony
        self.max_note_ticks = max_note_ticks
        self.max_tokens = max_tokens
        self.laggard_factor = laggard_factor
        self.bias = None if bias is None else np.asarray(bias, dtype=np.float32)
        self.sampler = BatchSampler(rng)
        self.grammar = GrammarBatch(gen.grammar, k)
        self.state = self.runtime.fork(gen.state, k, max_tokens=256)
        self.logits = np.repeat(np.asarray(gen.logits, dtype=np.float32)[None], k, axis=0)
        self.start_tick = gen.grammar.tick
        self.rows = np.arange(k)  # the candidate each row of the batch holds
        # per candidate
        self.tokens = np.zeros((k, 256), dtype=np.int64)
        self.loglik = np.zeros(k)
        self.length = np.zeros(k, dtype=np.int64)
        self.finished = np.zeros(k, dtype=bool)  # reached the answer's end
        self.pruned = np.zeros(k, dtype=bool)  # dropped for running far longer than the others
        self.started = np.full((k, 128), -1, dtype=np.int64)  # tick each of the candidate's own notes began
        self.velocity = np.zeros((k, 128), dtype=np.int64)
        self.notes: list[list[Note]] = [[] for _ in range(k)]
        # the melody so far: its last LOOP_NOTES - 1 notes before the tick of the latest onset, and that onset's top
        self.melody = np.full((k, LOOP_NOTES - 1), -1, dtype=np.int64)
        self.top = np.full(k, -1, dtype=np.int64)
        self.top_tick = np.full(k, -1, dtype=np.int64)
        self.steps = 0
        self.seconds = 0.0
        self.slowest_step_s = 0.0  # the longest planning step so far (a deadline must leave room for one)
        self._drop(self.grammar.tick >= self.until, finished=True)

    @property
    def done(self) -> bool:
        return len(self.rows) == 0 or self.steps >= self.max_tokens

    def run(self, budget_s: float | None = None, yield_to=None) -> bool:
        """Steps until every candidate reaches the answer's end (or `budget_s` seconds pass, or `yield_to()`
        says something more urgent waits); True when done."""
        t0 = time.perf_counter()
        while not self.done:
            t_step = time.perf_counter()
            self.step()
            self.slowest_step_s = max(self.slowest_step_s, time.perf_counter() - t_step)
            if budget_s is not None and time.perf_counter() - t0 >= budget_s or yield_to is not None and yield_to():
                break
        self.seconds += time.perf_counter() - t0
        return self.done

    def step(self) -> None:
        g, rows = self.grammar, self.rows
        masks = g.masks()
        crowded = g.sounding.sum(axis=1) >= self.max_polyphony
        if crowded.any():
            capped = masks.copy()
            capped[crowded, NOTE_ON:NOTE_OFF] = False
            capped[crowded, VELOCITY:VOCAB_SIZE] = False  # a velocity token is always followed by its note-on
            keep = capped.any(axis=1)
            masks[keep] = capped[keep]
        self._no_loop(masks)
        tokens = self.sampler.sample(self.logits if self.bias is None else self.logits + self.bias, masks, self.params)
        started = self.started[rows]
        expired = (started >= 0) & (g.tick[:, None] - started >= self.max_note_ticks) & masks[:, NOTE_OFF:TIME_SHIFT]
        forced = expired.any(axis=1)
        if forced.any():  # a note held too long ends first thing at this tick, as in the live session
            tokens[forced] = NOTE_OFF + np.argmax(expired[forced], axis=1)
        cols = np.flatnonzero(masks.any(axis=0))  # the rest is masked in every row: no share of the sum
        z = np.where(masks[:, cols], self.logits[:, cols].astype(np.float64), -np.inf)
        top = z.max(axis=1)
        lse = top + np.log(np.exp(z - top[:, None]).sum(axis=1))
        self.loglik[rows] += self.logits[np.arange(len(rows)), tokens].astype(np.float64) - lse
        if self.steps == self.tokens.shape[1]:
            self.tokens = np.concatenate([self.tokens, np.zeros_like(self.tokens)], axis=1)
        self.tokens[rows, self.length[rows]] = tokens
        self.length[rows] += 1
        self.steps += 1
        tick_before = g.tick.copy()
        pitch, velocity = g.apply(tokens)
        self._keep_notes(pitch, velocity, tick_before)
        self.logits = self.runtime.step_batch(tokens, g.positions, self.state)
        self._drop(g.tick >= self.until, finished=True)
        self._prune_laggards()

    def _no_loop(self, masks: np.ndarray) -> None:
        """Where the melody's last LOOP_NOTES - 1 notes before this tick use two pitches or fewer, the top note
        of this tick may be neither (note-ons go up in pitch within a tick: no note-on of this tick may)."""
        rows = self.rows
        settled = self.top_tick[rows] < self.grammar.tick  # the latest onset is behind: its top note is melody
        line = np.where(settled[:, None], np.concatenate([self.melody[rows, 1:], self.top[rows, None]], axis=1),
                        self.melody[rows])
        first = line[:, :1]
        other = line != first
        second = np.where(other.any(axis=1), line[np.arange(len(rows)), np.argmax(other, axis=1)], first[:, 0])
        looping = (line >= 0).all(axis=1) & ((line == first) | (line == second[:, None])).all(axis=1)
        for r in np.flatnonzero(looping):
            allowed = masks[r].copy()
            allowed[NOTE_ON + first[r, 0]] = allowed[NOTE_ON + second[r]] = False
            if allowed.any():
                masks[r] = allowed

    def _prune_laggards(self) -> None:
        """Once half the candidates are complete, one still going at `laggard_factor` times their median
        length is dropped: far denser than the rest, it would not be chosen, and it sets the plan's cost."""
        done = self.finished.sum()
        if len(self.rows) and done >= self.k / 2:
            limit = self.laggard_factor * np.median(self.length[self.finished])
            self._drop(self.length[self.rows] > limit, finished=False)

    def _drop(self, which: np.ndarray, finished: bool) -> None:
        if not which.any():
            return
        (self.finished if finished else self.pruned)[self.rows[which]] = True
        keep = np.flatnonzero(~which)
        self.rows = self.rows[keep]
        self.grammar.keep(keep)
        self.state.keep(keep)
        self.logits = self.logits[keep]

    def _keep_notes(self, pitch: np.ndarray, velocity: np.ndarray, tick: np.ndarray) -> None:
        on = np.flatnonzero((pitch >= 0) & (velocity > 0))
        if len(on):
            k, p, t = self.rows[on], pitch[on], tick[on]
            self.started[k, p] = t
            self.velocity[k, p] = velocity[on]
            onset = self.top_tick[k] != t  # a new onset: the last one's top note joins the melody
            moved = k[onset & (self.top[k] >= 0)]
            self.melody[moved] = np.concatenate([self.melody[moved, 1:], self.top[moved, None]], axis=1)
            self.top_tick[k[onset]] = t[onset]
            self.top[k] = p  # note-ons go up in pitch within a tick
        off = np.flatnonzero((pitch >= 0) & (velocity == 0))
        if len(off):
            k, p = self.rows[off], pitch[off]
            began = self.started[k, p]
            for kk, pp, start, end in zip(k.tolist(), p.tolist(), began.tolist(), tick[off].tolist()):
                if start >= 0:
                    self.notes[kk].append(Note(start, end, pp, int(self.velocity[kk, pp])))
            self.started[k, p] = -1

    def candidates(self, unfinished: bool = False) -> list[Candidate]:
        """The complete candidates (every one, if none was pruned). With `unfinished`, those still going too,
        as far as they came: what a plan cut short by its deadline chooses from (their notes still sounding
        end where the candidate stands)."""
        reached = {int(k): int(t) for k, t in zip(self.rows, self.grammar.tick)} if unfinished else {}
        chosen = self.finished.copy()
        if unfinished:
            chosen[self.rows] = True
        out = []
        for k in np.flatnonzero(chosen):
            end = self.until if self.finished[k] else reached[int(k)]
            notes = list(self.notes[k])
            for p in np.flatnonzero(self.started[k] >= 0):
                start = int(self.started[k, p])
                notes.append(Note(start, max(end, start + 1), int(p), int(self.velocity[k, p])))
            out.append(Candidate(self.tokens[k, :self.length[k]].tolist(), sorted(notes), float(self.loglik[k]),
                                 finished=bool(self.finished[k])))
        return out


def pitch_class_bias(call: list[Note], strength: float, floor: float = 0.1) -> np.ndarray | None:
    """Logit additions that tilt note-ons towards the call's pitch classes: strength * log of each class's
    share of the call's duration (relative to the average, with a floor for classes it never plays)."""
    from .answer_measures import pitch_class_weights

    if strength <= 0 or not call:
        return None
    w = pitch_class_weights(call)
    share = (w / w.sum() + floor / 12) / (1 + floor)
    tilt = strength * np.log(share * 12)
    bias = np.zeros(VOCAB_SIZE, dtype=np.float32)
    bias[NOTE_ON:NOTE_OFF] = tilt[np.arange(128) % 12]
    return bias
