"""The duet logic: listen, detect the end of a phrase, answer on the grid; or play along.

No threads, ports or clocks in here: the plugin calls `note_on`/`note_off`/`control_change` as the
player plays and `advance(now_tick)` a few hundred times a second, and schedules the `OutNote`s that
come back at the wall time of their ticks. Ticks are the song's ticks (24 per quarter) from the clock;
`locate` is called when the transport jumps.

Everything the player plays and everything Antiphon plays goes through one token stream, so the model
hears both. Antiphon's tokens are generated ahead of the playhead (`lookahead_beats`); until their
tick has passed they are provisional: a checkpoint of the stream is kept at every tick generated, and
when the player comes in the stream rolls back to the player's tick, so the model never believes it
played what was cancelled.
"""
from __future__ import annotations

import math
from collections import deque
from dataclasses import dataclass, field, replace

import numpy as np

from .events import Meter
from .generator import Generator
from .runtime import StepRuntime
from .answer_measures import key_of_notes
from .critic import DEFAULT_WEIGHTS, Call, Choice, Constraints, choose
from .events import Note
from .planner import Planner
from .sampler import SamplingParams, key_of
from .tokens import BOS, N_POSITIONS, NOTE_OFF, TIME_SHIFT, VELOCITY, StreamEncoder, shift_tokens

CALL_RESPONSE = "call_response"
ACCOMPANY = "accompany"
MODES = (CALL_RESPONSE, ACCOMPANY)
PHRASE_END_RULES = ("silence", "bar", "pedal", "cc")

PREPARE_TICKS = 3  # an answer is decided this many ticks before its first beat
ALL_SOUND_OFF, RESET_CONTROLLERS, ALL_NOTES_OFF = 120, 121, 123
MAX_CANDIDATES = 1024
CALL_CONTEXT_NOTES = 8  # a phrase shorter than this is heard together with the one before

LISTENING = "listening"
ANSWERING = "answering"
STOPPED = "stopped"


@dataclass(frozen=True)
class SessionParams:
    mode: str = CALL_RESPONSE
    temperature: float = 0.9
    top_p: float = 0.95
    response_bars: int = 2
    phrase_end: str = "silence"  # silence | bar | pedal | cc
    silence_beats: float = 1.0
    trigger_cc: int = 80  # with phrase_end == "cc": a value >= 64 on this CC ends the phrase
    answer_on: str = "beat"  # beat | bar: where the answer starts
    lookahead_beats: float = 1.0
    key_lock: bool = False
    low: int = 21
    high: int = 108
    max_note_beats: float = 8.0  # a generated note held longer is released
    max_polyphony: int = 8
    candidates: int = 16  # answers planned per phrase, the critic chooses one (1: sample as it plays)
    end_on: str = "any"  # stable | tonic | any: the answer's last note (a hard filter of the critic)
    register: str = "free"  # follow | free: the answer stays near the call's register (hard filter)
    stale_hold_bars: float = 2.0  # a player's note (or pedal) held this long with nothing else played no
    # longer holds the phrase open: its note-off may have been lost

    def validated(self) -> "SessionParams":
        if self.mode not in MODES:
            raise ValueError(f"mode must be one of {MODES}")
        if self.phrase_end not in PHRASE_END_RULES:
            raise ValueError(f"phrase_end must be one of {PHRASE_END_RULES}")
        if self.answer_on not in ("beat", "bar"):
            raise ValueError("answer_on must be beat or bar")
        Constraints(self.end_on, self.register, self.key_lock).validated()
        return replace(self, temperature=float(min(max(self.temperature, 0.0), 3.0)),
                       top_p=float(min(max(self.top_p, 0.05), 1.0)),
                       response_bars=int(min(max(self.response_bars, 1), 64)),
                       candidates=int(min(max(self.candidates, 1), MAX_CANDIDATES)),
                       silence_beats=float(min(max(self.silence_beats, 0.25), 16.0)),
                       stale_hold_bars=float(min(max(self.stale_hold_bars, 0.5), 64.0)),
                       lookahead_beats=float(min(max(self.lookahead_beats, 0.25), 8.0)))


@dataclass(frozen=True)
class OutNote:
    tick: int  # song tick to play at
    pitch: int
    velocity: int  # 0 = note-off


@dataclass
class Output:
    notes: list[OutNote] = field(default_factory=list)
    cancel_from: int | None = None  # first drop every scheduled event at this stream tick or later


@dataclass(frozen=True)
class RollNote:
    start: float
    end: float | None  # None while sounding
    pitch: int
    velocity: int
    who: str  # "player" | "antiphon"


@dataclass(frozen=True)
class SessionSnapshot:
    state: str
    mode: str
    tick: float
    step_ms: float
    tokens: int
    phrases: int
    answers: int
    key: str
    roll: tuple[RollNote, ...]
    choice: str = ""  # the critic's last choice, in one line
    plan_ms: float = 0.0  # how long planning the last answer took


_NAMES = ["C", "C#", "D", "Eb", "E", "F", "F#", "G", "Ab", "A", "Bb", "B"]


class Session:
    def __init__(self, runtime: StepRuntime, meter: Meter = Meter(), params: SessionParams = SessionParams(),
                 seed: int | None = None, history_tokens: int = 2048, roll_ticks: int = 24 * 4 * 8):
        self.meter = meter
        self.params = params.validated()
        self._seed = seed
        self.gen = Generator(runtime, meter, seed=seed, max_polyphony=self.params.max_polyphony)
        self.encoder = StreamEncoder(self.gen.grammar, sink=self._feed)
        self.history: deque[int] = deque(maxlen=history_tokens)
        self.offset = 0  # song tick + offset = stream tick (monotonic across locates)
        self.state = LISTENING
        self._pending_runtime: StepRuntime | None = None
        self._player_sounding: dict[int, int] = {}  # pitch -> stream tick
        self._pedal = False
        self._last_player_tick: int | None = None
        self._phrase_has_notes = False
        self._trigger = False
        self._answer_start = 0
        self._answer_end = 0
        self._ours: dict[int, int] = {}  # generated pitch -> stream tick it started (as scheduled)
        self._checkpoints: deque = deque()
        self._call_pcs = np.zeros(12)
        self._phrase_notes: list[Note] = []  # the player's notes of this phrase (stream ticks)
        self._previous_phrase: list[Note] = []
        self._player_velocity: dict[int, int] = {}
        self._planner: Planner | None = None  # planning the answer expected at self._plan_for
        self._plan_for: tuple[int, int] | None = None  # (answer start, stream tokens so far) it was started at
        self._planned: list[int] = []  # the chosen answer's tokens
        self._plan_pos = 0  # how many of them the stream has played
        self.last_choice: Choice | None = None
        self.last_call: Call | None = None
        self.last_candidates: list = []  # what the critic chose from (for the benchmarks and the panel)
        self.last_plan_ms = 0.0
        self.phrases = 0
        self.answers = 0
        self._roll: deque[RollNote] = deque(maxlen=512)
        self._roll_open: dict[tuple[str, int], RollNote] = {}
        self._roll_ticks = roll_ticks
        self._now = 0

    # ------------------------------------------------------------------ inputs from the plugin
    def set_params(self, params: SessionParams) -> None:
        params = params.validated()
        if params != self.params:
            self._drop_plan()
        self.params = params
        self.gen.max_polyphony = self.params.max_polyphony

    def set_runtime(self, runtime: StepRuntime) -> None:
        """A new style: takes effect at the next phrase (the model replays the recent stream)."""
        self._pending_runtime = runtime
        self._drop_plan()

    def note_on(self, song_tick: float, pitch: int, velocity: int) -> Output:
        if velocity == 0:
            return self.note_off(song_tick, pitch)
        tick = self._stream_tick(song_tick)
        out = self._interrupt(tick)
        self.encoder.note_on(tick, pitch, velocity)
        self._player_sounding[pitch] = tick
        self._player_velocity[pitch] = velocity
        self._last_player_tick = tick
        self._phrase_has_notes = True
        self._call_pcs[pitch % 12] += 1
        self._drop_plan()
        self._roll_on("player", tick, pitch, velocity)
        return out

    def note_off(self, song_tick: float, pitch: int) -> Output:
        tick = self._stream_tick(song_tick)
        started = self._player_sounding.pop(pitch, None)
        if started is None:
            return Output()
        self._phrase_notes.append(Note(started, max(tick, started + 1), pitch, self._player_velocity.pop(pitch, 80)))
        self._drop_plan()
        out = self._interrupt(tick) if self.params.mode == ACCOMPANY else Output()
        self.encoder.note_off(tick, pitch)
        self._last_player_tick = tick
        self._roll_off("player", tick, pitch)
        return out

    def control_change(self, song_tick: float, cc: int, value: int) -> Output:
        tick = self._stream_tick(song_tick)
        if cc in (ALL_SOUND_OFF, ALL_NOTES_OFF):  # the DAW's panic or a Stop: whatever the player held ends
            out = Output()
            for pitch in sorted(self._player_sounding):
                more = self.note_off(song_tick, pitch)
                out.notes += more.notes
                out.cancel_from = more.cancel_from if out.cancel_from is None else out.cancel_from
            self._pedal = False
            return out
        if cc == RESET_CONTROLLERS:
            self._pedal = False
            return Output()
        if cc == 64:
            was = self._pedal
            self._pedal = value >= 64
            if was and not self._pedal and self.params.phrase_end == "pedal":
                self._trigger = True
                self._last_player_tick = tick
        elif cc == self.params.trigger_cc and value >= 64 and self.params.phrase_end == "cc":
            self._trigger = True
        return Output()

    def locate(self, song_tick: float) -> Output:
        """The transport jumped (Start, Continue after a locate, SPP): release everything, keep the stream
        monotonic and bar-aligned."""
        out = self.release_all(self._now)
        bar = self.meter.ticks_per_bar
        target = self.gen.grammar.tick + bar
        self.offset = int(math.ceil((target - song_tick) / bar) * bar)
        self._now = self._stream_tick(song_tick)
        self._player_sounding.clear()
        self._phrase_has_notes = False
        self._last_player_tick = None
        self._trigger = False
        self.state = LISTENING
        return out

    def stop(self) -> Output:
        """Transport stop: every generated note ends now; the plugin also panics its sender."""
        out = self.release_all(self._now)
        self.state = STOPPED
        return out

    def release_all(self, tick: int) -> Output:
        """Ends the answer: note-offs for every generated note, fed into the stream too."""
        out = Output(cancel_from=tick)
        if self._checkpoints:
            self._rollback(tick)
        self.encoder.flush()
        offs = [p for p in self._ours]
        for p in sorted(offs):
            out.notes.append(OutNote(tick, p, 0))
            self._roll_off("antiphon", tick, p)
        self._ours.clear()
        self._feed_offs(offs)
        self._planned, self._plan_pos = [], 0
        if self.state == ANSWERING:
            self.state = LISTENING
        return out

    # ------------------------------------------------------------------ the clock drives this
    def advance(self, song_tick: float, budget_s: float | None = None) -> Output:
        """The clock reached `song_tick`. `budget_s`: the most time to spend planning an answer ahead in this
        call (None: as long as it takes, as on fake time)."""
        now = self._stream_tick(song_tick)
        self._now = now
        if self.state == STOPPED:
            self.state = LISTENING
        self.encoder.advance(now)
        out = Output()
        p = self.params
        tpb = self.meter.ticks_per_beat
        while self._checkpoints and self._checkpoints[0][0] < now - 1:
            self._checkpoints.popleft()
        if self._pending_runtime is not None and self.state == LISTENING and not self._phrase_has_notes \
                and not self._player_sounding:
            self._swap_runtime()
        if p.mode == CALL_RESPONSE:
            start = self._answer_due(now) if self.state == LISTENING else None
            if start is None and self.state == LISTENING and p.candidates > 1:
                self._plan_ahead(now, budget_s)
            if start is not None:
                self._start_answer(start)
            if self.state == ANSWERING:
                self._generate(now + p.lookahead_beats * tpb, self._answer_end, out)
                if self.gen.grammar.tick >= self._answer_end:
                    end = self.release_all(self._answer_end)
                    out.notes += end.notes
                    self.answers += 1
        else:
            recent = self._last_player_tick is not None and now - self._last_player_tick < self.meter.ticks_per_bar
            playing = recent or (bool(self._player_sounding) and not self._holding_is_stale(now))
            if playing and not self.encoder.pending:
                self._generate(now + p.lookahead_beats * tpb, None, out)
            elif not playing and self._ours:
                out.notes += self.release_all(now).notes  # the player stopped: so does the band
        return out

    # ------------------------------------------------------------------ internals
    def _stream_tick(self, song_tick: float) -> int:
        return max(int(round(song_tick)) + self.offset, 0)

    def _feed(self, token: int) -> None:
        self.gen.feed(token)
        self.history.append(token)

    def _feed_offs(self, pitches) -> None:
        g = self.gen.grammar
        for p in sorted(pitches):
            if g.sounding[p] and g.mask()[NOTE_OFF + p]:
                self._feed(NOTE_OFF + p)
            elif g.sounding[p]:
                self.encoder.note_off(g.tick + 1, p)
                self.encoder.flush()

    def _answer_due(self, now: int) -> int | None:
        """The tick the answer should start at, once the phrase has ended (or is about to: the answer is
        prepared `PREPARE_TICKS` ahead, and withdrawn if the player plays on)."""
        start = self._expected_start(now)
        if start is None or not (self._trigger or now >= start - PREPARE_TICKS):
            return None
        return start

    def _expected_start(self, now: int) -> int | None:
        """Where the answer will start if the player plays nothing more (None: not known yet)."""
        p = self.params
        if not self._phrase_has_notes or self._last_player_tick is None:
            return None
        unit = self.meter.ticks_per_bar if p.answer_on == "bar" else self.meter.ticks_per_beat
        if self._trigger:
            if self._player_sounding and p.phrase_end != "cc" and not self._holding_is_stale(now):
                return None
            return int(math.ceil((now + 1) / unit) * unit)
        if (self._player_sounding or self._pedal) and not self._holding_is_stale(now):
            return None
        if p.phrase_end == "silence":
            due = self._last_player_tick + p.silence_beats * self.meter.ticks_per_beat
        elif p.phrase_end == "bar":
            bar = self.meter.ticks_per_bar
            due = (self._last_player_tick // bar + 1) * bar
        else:
            return None
        start = int(math.ceil(due / unit) * unit)
        if start < now:  # the rule was met long ago (a stale hold): the next beat (or bar) from now
            start = int(math.ceil((now + 1) / unit) * unit)
        return start

    # ------------------------------------------------------------------ planned answers
    def call(self) -> Call:
        """The call being answered: this phrase, with the one before when it is short."""
        notes = self._phrase_notes + [Note(t, max(self._now, t + 1), p, self._player_velocity.get(p, 80))
                                      for p, t in self._player_sounding.items()]
        if len(notes) < CALL_CONTEXT_NOTES:
            notes = self._previous_phrase + notes
        return Call(sorted(notes), self.meter)

    def _plan_ahead(self, now: int, budget_s: float | None) -> None:
        """During the silence before the answer, plan it: the candidates are sampled from a copy of the
        stream brought to the expected start, in slices of `budget_s`; any player event drops the work."""
        if self.encoder.pending:
            return
        start = self._expected_start(now)
        if start is None:
            return
        key = (max(start, self.gen.grammar.tick), self.gen.tokens)
        if self._plan_for != key:
            self._planner = self._new_planner(key[0])
            self._plan_for = key
        if self._planner is not None and not self._planner.done:
            self._planner.run(budget_s)

    def _new_planner(self, start: int) -> Planner:
        fork = self.gen.fork(seed=int(self.gen.sampler.rng.integers(2**31)))
        for token in shift_tokens(start - fork.grammar.tick):
            fork.feed(token)
        p = self.params
        end = start + p.response_bars * self.meter.ticks_per_bar
        return Planner(fork, p.candidates, end, self._sampling(), fork.sampler.rng, max_polyphony=p.max_polyphony,
                       max_note_ticks=int(p.max_note_beats * self.meter.ticks_per_beat))

    def _drop_plan(self) -> None:
        self._planner, self._plan_for = None, None

    def _choose_answer(self, start: int) -> None:
        """At the answer's start: finish the plan made for it (or make one now) and let the critic choose."""
        key = (start, self.gen.tokens)
        if self._plan_for != key or self._planner is None:
            self._planner = self._new_planner(start)
        planner = self._planner
        planner.run()
        call = self.call()
        span = self.params.response_bars * self.meter.ticks_per_bar
        candidates = planner.candidates()
        constraints = Constraints(self.params.end_on, self.params.register, self.params.key_lock)
        self.last_choice = choose(call, [(c.notes, c.per_token) for c in candidates], span,
                                  getattr(self.gen.runtime, "critic_weights", None) or DEFAULT_WEIGHTS, constraints)
        self.last_call, self.last_candidates = call, candidates
        self.last_plan_ms = planner.seconds * 1000
        self._planned, self._plan_pos = candidates[self.last_choice.index].tokens, 0
        self._drop_plan()

    def _holding_is_stale(self, now: int) -> bool:
        """Held notes or pedal with nothing else played for `stale_hold_bars`: the phrase is over (a lost
        note-off must not keep the session listening for ever)."""
        return now - self._last_player_tick >= self.params.stale_hold_bars * self.meter.ticks_per_bar

    def _start_answer(self, start: int) -> None:
        self.encoder.flush()
        if self._pending_runtime is not None:
            self._swap_runtime()
        start = max(start, self.gen.grammar.tick)
        self._answer_start = start
        self._answer_end = start + self.params.response_bars * self.meter.ticks_per_bar
        self.encoder.shift_to(start)
        self._trigger = False
        self._phrase_has_notes = False
        self.phrases += 1
        self.state = ANSWERING
        self._planned, self._plan_pos = [], 0
        if self.params.candidates > 1:
            self._choose_answer(start)
        self._previous_phrase, self._phrase_notes = self.call().notes[-64:], []

    def _sampling(self) -> SamplingParams:
        p = self.params
        scale = None
        if p.key_lock:
            call = self.call().notes
            scale = key_of_notes(call).scale if call else (key_of(self._call_pcs)[1] if self._call_pcs.sum() else None)
        return SamplingParams(temperature=p.temperature, top_p=p.top_p, low=p.low, high=p.high, scale=scale)

    def _generate(self, horizon: float, until: int | None, out: Output) -> None:
        params = self._sampling()
        g = self.gen.grammar
        limit = 4096  # tokens per call: the grammar always reaches the horizon long before
        while g.tick <= horizon and (until is None or g.tick < until) and limit:
            limit -= 1
            if not self._checkpoints or self._checkpoints[-1][0] < g.tick:
                self._checkpoints.append((g.tick, g.copy(), self.gen.state.checkpoint(), self.gen.logits.copy(),
                                          dict(self._ours), len(self.history), self._plan_pos))
                if not self._planned:  # a planned answer already holds its releases
                    self._release_long_notes(out)
            if self._plan_pos < len(self._planned):  # the critic's choice, token by token: the model hears it
                token = self._planned[self._plan_pos]
                self._plan_pos += 1
                ev = self.gen.feed(token)
            else:
                token, ev = self.gen.sample(params)
            self.history.append(token)
            if ev is None:
                continue
            if ev.velocity:
                self._ours[ev.pitch] = ev.tick
                out.notes.append(OutNote(ev.tick, ev.pitch, ev.velocity))
                self._roll_on("antiphon", ev.tick, ev.pitch, ev.velocity)
            elif ev.pitch in self._ours:
                del self._ours[ev.pitch]
                out.notes.append(OutNote(ev.tick, ev.pitch, 0))
                self._roll_off("antiphon", ev.tick, ev.pitch)

    def _release_long_notes(self, out: Output) -> None:
        """At the start of a generated tick: notes held longer than max_note_beats end here."""
        g = self.gen.grammar
        longest = self.params.max_note_beats * self.meter.ticks_per_beat
        expired = [p for p, start in self._ours.items() if g.tick - start >= longest]
        for p in expired:
            del self._ours[p]
            out.notes.append(OutNote(g.tick, p, 0))
            self._roll_off("antiphon", g.tick, p)
        self._feed_offs(expired)

    def _interrupt(self, tick: int) -> Output:
        """The player plays: generated material after `tick` is withdrawn (and, in call-and-response, the
        answer ends). What is due at `tick` itself may already be sounding, so the cut is one tick later."""
        tick += 1
        if self.state == ANSWERING and self.params.mode == CALL_RESPONSE:
            out = self.release_all(tick)
            self.answers += 1
            self.state = LISTENING
            return out
        if self.params.mode == ACCOMPANY and self._checkpoints:
            return self._withdraw(tick)
        return Output()

    def _withdraw(self, tick: int) -> Output:
        """Accompaniment: the material generated from `tick` on is withdrawn and generated again once the
        player's event is in the stream. Notes sounding at `tick` go on (their note-offs are re-sent)."""
        self._rollback(tick)
        out = Output(cancel_from=tick)
        cut = tick - self.offset
        for key in [k for k, n in self._roll_open.items() if k[0] == "antiphon" and n.start >= cut]:
            del self._roll_open[key]
        self._roll = deque((n for n in self._roll if n.who != "antiphon" or n.start < cut), maxlen=self._roll.maxlen)
        for p in sorted(self._ours):
            self._roll_open.setdefault(("antiphon", p), RollNote(self._ours[p] - self.offset, None, p, 64, "antiphon"))
        return out

    def _rollback(self, tick: int) -> None:
        """Restores the stream as it was when generation first reached `tick` (or the last point before)."""
        chosen = None
        while self._checkpoints and self._checkpoints[-1][0] >= tick:
            chosen = self._checkpoints.pop()
        if chosen is None:
            return
        _, grammar, state, logits, ours, hist_len, self._plan_pos = chosen
        self.gen.grammar.copy_from(grammar)
        self.gen.state.copy_from(state)
        np.copyto(self.gen.logits, logits)
        self._ours = ours
        while len(self.history) > hist_len:
            self.history.pop()

    def _swap_runtime(self) -> None:
        """The new model hears the recent stream (its tokens at their bar positions) before it plays."""
        runtime, self._pending_runtime = self._pending_runtime, None
        replay = list(self.history)[-256:]
        tick = self.gen.grammar.tick - sum(t - TIME_SHIFT + 1 for t in replay if TIME_SHIFT <= t < VELOCITY)
        self.gen.runtime = runtime
        self.gen.state = runtime.initial_state()
        logits = runtime.step(BOS, min(max(tick, 0) % self.meter.ticks_per_bar, N_POSITIONS - 1), self.gen.state)
        for tok in replay:
            if TIME_SHIFT <= tok < VELOCITY:
                tick += tok - TIME_SHIFT + 1
            logits = runtime.step(int(tok), min(max(tick, 0) % self.meter.ticks_per_bar, N_POSITIONS - 1), self.gen.state)
        runtime.sync_sounding(self.gen.state, self.gen.grammar.sounding)
        self.gen.logits = np.array(logits, dtype=np.float32)
        self._checkpoints.clear()

    def _roll_on(self, who: str, tick: float, pitch: int, velocity: int) -> None:
        n = RollNote(tick - self.offset, None, pitch, velocity, who)
        self._roll_open[(who, pitch)] = n
        self._roll.append(n)

    def _roll_off(self, who: str, tick: float, pitch: int) -> None:
        n = self._roll_open.pop((who, pitch), None)
        if n is not None:
            self._roll.append(replace(n, end=tick - self.offset))

    def recent_notes(self) -> list[RollNote]:
        """The last notes of both players (closed notes replace their open entries)."""
        latest: dict[tuple[str, int, float], RollNote] = {}
        for n in self._roll:
            latest[(n.who, n.pitch, n.start)] = n
        return sorted(latest.values(), key=lambda n: n.start)

    def snapshot(self) -> SessionSnapshot:
        tonic, scale = key_of(self._call_pcs)
        minor = (tonic + 3) % 12 in scale
        key = f"{_NAMES[tonic]} {'minor' if minor else 'major'}" if self._call_pcs.sum() else "-"
        return SessionSnapshot(self.state, self.params.mode, self._now - self.offset,
                               self.gen.step_ms, self.gen.tokens, self.phrases, self.answers, key,
                               tuple(self.recent_notes()[-256:]),
                               self.last_choice.summary() if self.last_choice else "", self.last_plan_ms)
