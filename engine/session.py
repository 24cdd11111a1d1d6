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
import time
from collections import deque
from dataclasses import dataclass, field, replace

import numpy as np

from .events import Meter
from .generator import Generator
from .runtime import StepRuntime
from .answer_measures import CONSONANT, key_of_notes, max_sounding
from .critic import DEFAULT_CHOICE, DEFAULT_WEIGHTS, Call, Choice, Constraints, choose
from .events import Note
from .planner import Planner, pitch_class_bias
from .reflexes import Reflexes, choose_reflexes
from .sampler import SamplingParams, allowed_pitches, key_of
from .tokens import (BOS, N_PITCHES, N_POSITIONS, NOTE_OFF, NOTE_ON, ROLE_BAND, ROLE_NONE, ROLE_PLAYER, TIME_SHIFT,
                     VELOCITY, VOCAB_SIZE, StreamEncoder, bin_velocity, shift_tokens)

CALL_RESPONSE = "call_response"
ACCOMPANY = "accompany"
MODES = (CALL_RESPONSE, ACCOMPANY)
PHRASE_END_RULES = ("silence", "bar", "pedal", "cc")

PREPARE_TICKS = 3  # an answer is decided this many ticks before its first beat
RELEASE_SLACK_TICKS = 2  # with --phrase-end silence, a phrase ending this many ticks after a beat ended on it
GENERATE_SLICE_S = 0.006  # on the live clock, generating ahead takes at most this long per call
ANSWER_MARGIN_S = 0.012  # a plan cut at its deadline leaves this long to send the answer's first notes,
FIRST_TICK_TOKENS = 8  # and the time to step this many tokens (a four-note chord's note-ons and offs)
CHOOSE_S = 0.010  # and the time the critic takes to choose (the longest of the last CHOOSE_PLANS; this at first)
CHOOSE_PLANS = 8
PLAN_STEP_PLANS = 8  # a plan cut at its deadline allows for the slowest step of the last this many plans
ALL_SOUND_OFF, RESET_CONTROLLERS, ALL_NOTES_OFF = 120, 121, 123
MAX_CANDIDATES = 1024
VOICINGS = ("below", "above", "around")
COMPS = ("free", "follow", "beats", "sustain")
POLYPHONY = ("call", "free")
CALL_CONTEXT_NOTES = 8  # a phrase shorter than this is heard together with the one before
CALL_MAX_NOTES = 64  # the call an answer answers: at most the phrase's last notes (a flood is not a call)
KEY_CONTEXT_NOTES = 24  # the accompaniment keeps to the key of the player's last notes ...
MIN_KEY_NOTES = 6  # ... once there are this many

LISTENING = "listening"
ANSWERING = "answering"
STOPPED = "stopped"


@dataclass(frozen=True)
class SessionParams:
    mode: str = CALL_RESPONSE
    temperature: float = 1.1  # chosen on the valid calls by the answer benchmark's two-sample test (0.9-1.2)
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
    polyphony: str = "call"  # call: an answer sounds at most as many notes at once as its call did | free
    candidates: int = 16  # answers planned per phrase, the critic chooses one (1: sample as it plays)
    end_on: str = "any"  # stable | tonic | any: the answer's last note (a hard filter of the critic)
    register: str = "free"  # follow | free: the answer stays near the call's register (hard filter; real
    # continuations of held-out calls stay within a fifth 98 % of the time, and the fitted critic goes there)
    kinship: float = 0.0  # planned candidates lean towards the call's pitch classes by this (0: not at all; 1
    # made answers use the call's pitch classes far more than real continuations do)
    voicing: str = "below"  # below | above | around the player's notes: where the accompaniment plays
    comp: str = "free"  # free | follow | beats | sustain: the accompaniment's rhythm (see _comp_allows)
    react: bool = True  # accompaniment re-plans the tick the player plays on (False: predicted a beat ahead)
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
        if self.voicing not in VOICINGS:
            raise ValueError(f"voicing must be one of {VOICINGS}")
        if self.comp not in COMPS:
            raise ValueError(f"comp must be one of {COMPS}")
        if self.polyphony not in POLYPHONY:
            raise ValueError(f"polyphony must be one of {POLYPHONY}")
        return replace(self, temperature=float(min(max(self.temperature, 0.0), 3.0)),
                       top_p=float(min(max(self.top_p, 0.05), 1.0)),
                       response_bars=int(min(max(self.response_bars, 1), 64)),
                       candidates=int(min(max(self.candidates, 1), MAX_CANDIDATES)),
                       kinship=float(min(max(self.kinship, 0.0), 4.0)),
                       silence_beats=float(min(max(self.silence_beats, 0.25), 16.0)),
                       stale_hold_bars=float(min(max(self.stale_hold_bars, 0.5), 64.0)),
                       lookahead_beats=float(min(max(self.lookahead_beats, 0.25), 8.0)))


@dataclass
class _Checkpoint:
    """The stream at one point of generation: at the start of `tick` (before anything at it) or, with `end`,
    after everything at it (before the time shift that leaves it)."""

    tick: int
    end: bool
    grammar: object
    state: object
    logits: np.ndarray
    ours: dict
    history: int
    plan_pos: int
    pending: tuple  # what the encoder held for the player

    def clears(self, tick: int) -> bool:
        """Restoring this leaves nothing generated at `tick` or later."""
        return self.tick < tick if self.end else self.tick <= tick


class StyleSwitch:
    """A new style hearing the recent stream: the snapshot is taken on the session's thread, `run()` may go
    on any other (pure compute on its own data), and the session adopts it back, stepping whatever was
    played since."""

    def __init__(self, session: "Session", runtime, window: int = 256):
        replay = list(session.history)[-window:]
        self.roles = [ROLE_NONE] + list(session.history_roles)[len(session.history_roles) - len(replay):]
        bar = session.meter.ticks_per_bar
        self.tick = session.gen.grammar.tick
        tick = self.tick - sum(t - TIME_SHIFT + 1 for t in replay if TIME_SHIFT <= t < VELOCITY)
        self.positions = [min(max(tick, 0) % bar, N_POSITIONS - 1)]
        for tok in replay:
            if TIME_SHIFT <= tok < VELOCITY:
                tick += tok - TIME_SHIFT + 1
            self.positions.append(min(max(tick, 0) % bar, N_POSITIONS - 1))
        self.tokens = [BOS] + [int(t) for t in replay]
        self.runtime = runtime
        self.candidates = session.params.candidates if session.params.mode == CALL_RESPONSE else 1
        self.appended, self.rollbacks = session.appended, session.rollbacks
        self.state = self.logits = None
        self.seconds = 0.0
        self.step_s: list[float] = []  # the new style's per-event step, timed from the replayed state
        self.plan_step_s = 0.0  # and its planning step (every candidate at once), the slower of two

    def run(self) -> "StyleSwitch":
        t0 = time.perf_counter()
        self.state, logits = self.runtime.replay(self.tokens, self.positions, self.roles)
        self.logits = np.array(logits, dtype=np.float32)
        self.seconds = time.perf_counter() - t0
        self._time_steps()
        return self

    def _time_steps(self, repeats: int = 3) -> None:
        """What the new style's steps cost on this machine now, on copies of the replayed state: the answer's
        deadlines read them before the stream has stepped it once (a slow style's first plan must not be
        given the old style's time)."""
        token, position = self.tokens[-1], self.positions[-1]
        scratch = self.state.copy()
        for _ in range(repeats):
            t0 = time.perf_counter()
            self.runtime.step(token, position, scratch)
            self.step_s.append(time.perf_counter() - t0)
        if self.candidates > 1:
            batch = self.runtime.fork(self.state, self.candidates, max_tokens=4)
            tokens, positions = np.full(self.candidates, token), np.full(self.candidates, position)
            for _ in range(2):
                t0 = time.perf_counter()
                self.runtime.step_batch(tokens, positions, batch)
                self.plan_step_s = max(self.plan_step_s, time.perf_counter() - t0)


@dataclass(frozen=True)
class OutNote:
    tick: int  # song tick to play at
    pitch: int
    velocity: int  # 0 = note-off


@dataclass
class Output:
    """What the plugin must do: first drop every scheduled event at stream tick `cancel_from` or later
    (notes sounding then go on: the session sends their note-offs again), then schedule `notes`."""

    notes: list[OutNote] = field(default_factory=list)
    cancel_from: int | None = None

    def merge(self, later: "Output") -> None:
        """Adds what a later step decided. The plugin cancels before it schedules, so a later withdrawal
        must lie after every note decided before it (the session merges only such: an answer's end, the
        accompaniment's last release)."""
        if later.cancel_from is not None:
            self.cancel_from = later.cancel_from if self.cancel_from is None else min(self.cancel_from,
                                                                                      later.cancel_from)
        self.notes += later.notes


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
    device: str = "cpu"  # where planned answers are computed
    plan_cut: bool = False  # the last plan ran out of time before its answer (its best start was played)
    plans_cut: int = 0


_NAMES = ["C", "C#", "D", "Eb", "E", "F", "F#", "G", "Ab", "A", "Bb", "B"]


class Session:
    def __init__(self, runtime: StepRuntime, meter: Meter = Meter(), params: SessionParams = SessionParams(),
                 seed: int | None = None, history_tokens: int = 2048, roll_ticks: int = 24 * 4 * 8,
                 device: str = "cpu"):
        """`device`: where planned answers' K streams are stepped ("cpu": numpy, the faster there; "cuda":
        torch, see engine/torch_step.py). The session's own stream is always stepped on the CPU."""
        self.meter = meter
        self.device = str(device)
        self._stepper = None
        self.params = params.validated()
        self._seed = seed
        self.gen = Generator(runtime, meter, seed=seed, max_polyphony=self.params.max_polyphony)
        self.encoder = StreamEncoder(self.gen.grammar, sink=self._feed)
        self.history: deque[int] = deque(maxlen=history_tokens)
        self.history_roles: deque[int] = deque(maxlen=history_tokens)  # who played each (tokens.ROLE_*)
        self.appended = 0  # tokens the stream holds, counted from the start (history keeps the latest)
        self.rollbacks = 0  # how many times the stream went back
        self.offset = 0  # song tick + offset = stream tick (monotonic across locates)
        self.state = LISTENING
        self._pending_runtime: StepRuntime | None = None
        self._switch: StyleSwitch | None = None  # the pending style, being prepared
        self.last_switch_caught_up = 0  # tokens the last switch stepped on the engine thread
        # if set, the accompaniment's notes reacting to the player go out through this as soon as they are
        # chosen, before the model steps past them (the plugin sends them at once); else in the Output
        self.emit = None
        # if set, the first notes of a planned answer go out through this (an Output) as soon as the critic has
        # chosen, before the model steps through them: a slow style's steps then do not hold the first beat back
        self.send_ahead = None
        self._sent_ahead: set[tuple[int, int]] = set()  # (stream tick, pitch): sent, not yet stepped through
        # if set, a callable that is True while a player's event waits to be handled (the plugin's inbox):
        # generating and planning ahead stop at the next model step, so the reaction is not held back by them
        self.input_waiting = None
        self._player_sounding: dict[int, int] = {}  # pitch -> stream tick
        self._pedal = False
        self._last_player_tick: int | None = None
        self._phrase_has_notes = False
        self._trigger = False
        self._answer_start = 0
        self._answer_end = 0
        self._answer_cut = False  # the player interrupted the answer (it may still be due to end later)
        self._ours: dict[int, int] = {}  # generated pitch -> stream tick it started (as scheduled)
        self._band_offs: set[int] = set()  # Antiphon's note-offs the encoder holds for the next tick
        self._player_heard = None  # (runtime, pitches) the generator's player input stands for
        self._checkpoints: deque = deque()
        self._call_pcs = np.zeros(12)
        self._phrase_notes: list[Note] = []  # the player's notes of this phrase (stream ticks)
        self._previous_phrase: list[Note] = []
        self._player_velocity: dict[int, int] = {}
        self._last_player_pitch: int | None = None
        self._emitted: list[tuple[int, int, int]] = []  # Antiphon's recent events (tick, pitch, velocity)
        self._pitches = np.arange(N_PITCHES)
        self._consonant = np.array(sorted(CONSONANT))
        self._consonant_classes = np.isin(np.arange(12), self._consonant)
        self._band_pitch_cache = None
        self._reflexes: tuple | None = None  # (what they were chosen from, Reflexes)
        self._reflex_rng: np.random.Generator | None = None
        self._reflex_sent: set[tuple[int, bool]] = set()  # (pitch, note-on): the reaction the port layer played
        self._reflex_on: int | None = None  # the note it started
        self._quiet_tick: int | None = None  # the tick of a reaction that came in with no note
        self._planner: Planner | None = None  # planning the answer expected at self._plan_for
        self._plan_for: tuple[int, int] | None = None  # (answer start, stream tokens so far) it was started at
        self._planned: list[int] = []  # the chosen answer's tokens
        self._plan_pos = 0  # how many of them the stream has played
        self.last_choice: Choice | None = None
        self.last_call: Call | None = None
        self.last_candidates: list = []  # what the critic chose from (for the benchmarks and the panel)
        self.last_plan_ms = 0.0
        self._choose_s: deque[float] = deque([CHOOSE_S], maxlen=CHOOSE_PLANS)  # what choosing took, plan by plan
        self._plan_steps_s: deque[float] = deque([0.0], maxlen=PLAN_STEP_PLANS)  # each plan's slowest step
        self._refused_for: int | None = None  # a replayed style came back too near this answer's start
        self.last_plan_cut = False  # the last plan ran out of time: its best start was played, the rest sampled
        self.plans_cut = 0
        self._tick_s: float | None = None  # seconds per tick on the live clock (None: fake time, no deadline)
        self._song_tick = 0.0
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
        self._switch = None
        if self._tick_s is None:  # on fake time it plans this answer now; live, it takes over once replayed
            self._drop_plan()

    def note_on(self, song_tick: float, pitch: int, velocity: int,
                reflex: tuple[tuple[int, int], ...] | None = None) -> Output:
        """`reflex`: the band's reaction the port layer already played at this note (its pitch's entry of the
        table `reflexes()` armed): the stream plays on from it, and whatever of it the stream cannot take
        ends at once."""
        if velocity == 0:
            return self.note_off(song_tick, pitch)
        tick = self._stream_tick(song_tick)
        out = self._interrupt(tick)
        self._reflex_sent = {(q, v > 0) for q, v in reflex or ()}
        self._reflex_on = next((q for q, v in reflex or () if v), None)
        if self._reflex_sent:  # a note the reaction started is not ended by the withdrawal
            started = {q for q, on in self._reflex_sent if on}
            out.notes = [n for n in out.notes if n.velocity or n.pitch not in started]
        if pitch in self._ours:  # the player takes over a pitch Antiphon holds
            del self._ours[pitch]
            out.notes.append(OutNote(tick, pitch, 0))
            self._roll_off("antiphon", tick, pitch)
        self._player_sounding[pitch] = tick  # before the encoder feeds the shift to its tick: heard there
        self.encoder.note_on(tick, pitch, velocity)
        self._player_velocity[pitch] = velocity
        self._last_player_tick = tick
        self._last_player_pitch = pitch
        self._phrase_has_notes = True
        self._call_pcs[pitch % 12] += 1
        self._drop_plan()
        self._roll_on("player", tick, pitch, velocity)
        if self.params.mode == ACCOMPANY and self.params.react:
            self._react(tick, out, reflex=reflex is not None)
        came_in = self._reflex_on is not None and self._reflex_on in self._ours
        # what was heard at the note is the band's reaction: nothing comes in after it on this tick
        self._quiet_tick = tick if reflex is not None and not came_in else None
        self._end_reflex(tick, out)
        return out

    def note_off(self, song_tick: float, pitch: int) -> Output:
        tick = self._stream_tick(song_tick)
        started = self._player_sounding.pop(pitch, None)
        if started is None:
            return Output()
        self._phrase_notes.append(Note(started, max(tick, started + 1), pitch, self._player_velocity.pop(pitch, 80)))
        if len(self._phrase_notes) > 4 * CALL_MAX_NOTES:
            del self._phrase_notes[:-CALL_MAX_NOTES]
        self._drop_plan()
        out = self._interrupt(tick) if self.params.mode == ACCOMPANY else Output()
        self.encoder.note_off(tick, pitch)
        self._last_player_tick = tick
        self._roll_off("player", tick, pitch)
        if self.params.mode == ACCOMPANY and self.params.react:
            self._react(tick, out)
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
        self._phrase_notes, self._previous_phrase = [], []  # a new place in the song: a new call
        self._last_player_tick = None
        self._trigger = False
        self._drop_plan()
        self.state = LISTENING
        return out

    def stop(self) -> Output:
        """Transport stop: every generated note ends now; the plugin also panics its sender."""
        out = self.release_all(self._now)
        self.state = STOPPED
        return out

    def release_all(self, tick: int, rewind: bool = False) -> Output:
        """Ends the answer: note-offs for every generated note, fed into the stream too. What was generated
        for `tick` or later is withdrawn; with `rewind`, the stream also goes back to `tick` (for the
        player's note that interrupts)."""
        out = Output(cancel_from=tick)
        if self._checkpoints and (rewind or any(t >= tick for t, _, _ in self._emitted)):
            self._rollback(tick)
        out.notes += self._withdrawn_offs(tick)
        # a planned answer's first notes the stream has not reached: withdrawn if later, ended if they went out
        out.notes += [OutNote(tick, p, 0) for t, p in sorted(self._sent_ahead) if t < tick]
        self._sent_ahead = set()
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
    def advance(self, song_tick: float, budget_s: float | None = None, tick_s: float | None = None) -> Output:
        """The clock reached `song_tick`. `budget_s`: the most time to spend planning an answer ahead in this
        call (None: as long as it takes, as on fake time). `tick_s`: the clock's seconds per tick; with it, a
        plan still running when its answer is due stops in time for the first beat (see _choose_answer)."""
        self._tick_s, self._song_tick = tick_s, float(song_tick)
        now = self._stream_tick(song_tick)
        self._now = now
        if self.state == STOPPED:
            self.state = LISTENING
        self.encoder.advance(now)
        out = Output()
        p = self.params
        tpb = self.meter.ticks_per_beat
        while len(self._checkpoints) > 1 and self._checkpoints[1].tick < now - 1:
            self._checkpoints.popleft()
        if self._emitted and self._emitted[0][0] < now - 2 * tpb:
            self._emitted = [e for e in self._emitted if e[0] >= now - 2 * tpb]
        if self._swap_now() and self.state == LISTENING and not self._phrase_has_notes \
                and not self._player_sounding and now >= self._answer_start:
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
                    out.merge(self.release_all(self._answer_end))
                    self.answers += 1
        else:
            recent = self._last_player_tick is not None and now - self._last_player_tick < self.meter.ticks_per_bar
            playing = recent or (bool(self._player_sounding) and not self._holding_is_stale(now))
            if playing and not self.encoder.pending:
                self._generate(now + p.lookahead_beats * tpb, None, out)
            elif not playing and self._ours:
                out.merge(self.release_all(now))  # the player stopped: so does the band
        return out

    # ------------------------------------------------------------------ internals
    def _stream_tick(self, song_tick: float) -> int:
        return max(int(round(song_tick)) + self.offset, 0)

    def _feed(self, token: int, band: bool = False) -> None:
        """Feeds a token the session did not sample: the player's (through the encoder), or the note-off of
        one of Antiphon's notes (`band`; also one the encoder had to hold for the next tick)."""
        if NOTE_OFF <= token < TIME_SHIFT and token - NOTE_OFF in self._band_offs:
            self._band_offs.discard(token - NOTE_OFF)
            band = True
        role = self._role(token, band)
        self._hear_player()
        self.gen.feed(token, role=role)
        self._remember(token, role)

    def _hear_player(self) -> None:
        """What the player sounds now, for a model with the player input (model.player_sounding): in
        accompaniment, read with every step; nothing otherwise."""
        key = (id(self.gen.runtime), tuple(sorted(self._player_sounding))) if self.params.mode == ACCOMPANY else None
        if key != self._player_heard:
            self._player_heard = key
            gates = getattr(self.gen.runtime, "player_gates", None)
            self.gen.player = gates(key[1]) if key is not None and gates is not None else None

    def _role(self, token: int, band: bool) -> int:
        """Who plays `token`, as a model with the role input reads it: in accompaniment the player or the band;
        time shifts, and every token of a call and its answer, name nobody (tokens.ROLE_*)."""
        plays_a_note = NOTE_ON <= token < TIME_SHIFT or VELOCITY <= token < VOCAB_SIZE
        if self.params.mode != ACCOMPANY or not plays_a_note:
            return ROLE_NONE
        return ROLE_BAND if band else ROLE_PLAYER

    def _remember(self, token: int, role: int) -> None:
        self.history.append(token)
        self.history_roles.append(role)
        self.appended += 1

    def _feed_offs(self, pitches) -> None:
        """Note-offs of Antiphon's own notes, into the stream."""
        g = self.gen.grammar
        for p in sorted(pitches):
            if g.sounding[p] and g.mask()[NOTE_OFF + p]:
                self._feed(NOTE_OFF + p, band=True)
            elif g.sounding[p]:
                self._band_offs.add(p)
                self.encoder.note_off(g.tick + 1, p)
                self.encoder.flush()

    def _answer_due(self, now: int) -> int | None:
        """The tick the answer should start at, once the phrase has ended (or is about to: the answer is
        prepared `PREPARE_TICKS` ahead, and withdrawn if the player plays on)."""
        start = self._expected_start(now)
        if start is None or not (self._trigger or now >= start - self._prepare_ticks()):
            return None
        return start

    def _prepare_ticks(self) -> int:
        """How long before its first beat an answer is decided: PREPARE_TICKS, or on the live clock the time to
        send its first notes (ANSWER_MARGIN_S and stepping FIRST_TICK_TOKENS) if the style is slower."""
        if self._tick_s is None or self._tick_s <= 0:
            return PREPARE_TICKS
        # + a planning step (it cannot stop midway), choosing, and a tick for where in its tick the clock stands
        return max(PREPARE_TICKS, math.ceil((self._first_notes_s() + self._finish_plan_s()) / self._tick_s) + 1)

    def _finish_plan_s(self) -> float:
        """What a plan cut at its deadline still takes: the planning step under way (one per stream, it cannot
        stop midway; as long as the slowest of this plan's and the last plans' steps) and the critic's choice,
        as long as the longest of the last plans' choices."""
        if self.params.candidates <= 1 or self.params.mode != CALL_RESPONSE:
            return 0.0
        planner = self._planner
        step_s = max(planner.slowest_step_s if planner is not None else 0.0, max(self._plan_steps_s))
        return step_s + max(self._choose_s)

    def _first_notes_s(self, step_s: float | None = None) -> float:
        """The time to send an answer's first notes, with this style's step (or `step_s`'s)."""
        step_s = self.gen.step_ms / 1000 if step_s is None else step_s
        return ANSWER_MARGIN_S + FIRST_TICK_TOKENS * step_s  # each stepped before the next is drawn

    def _seconds_to(self, start: int) -> float:
        """On the live clock, the seconds from now to stream tick `start`."""
        return (start - self.offset - self._song_tick) * self._tick_s

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
        if p.phrase_end == "silence":  # (a release just after a beat ends the phrase on it)
            due = self._last_player_tick - RELEASE_SLACK_TICKS + p.silence_beats * self.meter.ticks_per_beat
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
        return Call(sorted(notes)[-CALL_MAX_NOTES:], self.meter)

    def _plan_ahead(self, now: int, budget_s: float | None) -> None:
        """During the silence before the answer, plan it: the candidates are sampled from a copy of the
        stream brought to the expected start, in slices of `budget_s`; any player event drops the work."""
        if self.encoder.pending:
            return
        start = self._expected_start(now)
        if start is None:
            return
        if self._swap_now():  # the new style plans this answer
            self._swap_runtime()
        key = (max(start, self.gen.grammar.tick), self.gen.tokens)
        if self._plan_for != key:
            self._planner = self._new_planner(key[0])
            self._plan_for = key
        if self._planner is not None and not self._planner.done:
            self._planner.run(budget_s, yield_to=self.input_waiting)

    def _new_planner(self, start: int) -> Planner:
        fork = self.gen.fork(seed=int(self.gen.sampler.rng.integers(2**31)))
        for token in shift_tokens(start - fork.grammar.tick):
            fork.feed(token)
        p = self.params
        end = start + p.response_bars * self.meter.ticks_per_bar
        return Planner(fork, p.candidates, end, self._sampling(), fork.sampler.rng,
                       max_polyphony=self._answer_polyphony(),
                       max_note_ticks=int(p.max_note_beats * self.meter.ticks_per_beat), stepper=self._planning_stepper(),
                       bias=pitch_class_bias(self.call().notes, p.kinship))

    def _answer_polyphony(self) -> int:
        """The most notes an answer sounds at once: the call's own most (`polyphony` "call"), within the cap."""
        p = self.params
        if p.polyphony == "free":
            return p.max_polyphony
        return max(1, min(p.max_polyphony, max_sounding(self.call().notes)))

    def _planning_stepper(self):
        from .torch_step import planning_stepper

        if self._stepper is None or self._stepper[0] is not self.gen.runtime:
            self._stepper = (self.gen.runtime, planning_stepper(self.gen.runtime, self.device))
        return self._stepper[1]

    def _drop_plan(self) -> None:
        self._planner, self._plan_for = None, None

    def _choose_answer(self, start: int, planned_ahead: bool) -> None:
        """At the answer's start: finish the plan made for it during the silence (`planned_ahead`: made for
        this start from this very stream), or make one now, and let the critic choose."""
        if not planned_ahead or self._planner is None:
            self._planner = self._new_planner(start)
        planner = self._planner
        planner.run(self._time_to_answer(start))
        cut = not planner.done
        t0 = time.perf_counter()
        call = self.call()
        span = self.params.response_bars * self.meter.ticks_per_bar
        candidates = planner.candidates(unfinished=cut)
        constraints = Constraints(self.params.end_on, self.params.register, self.params.key_lock)
        runtime = self.gen.runtime
        self.last_choice = choose(call, [(c.notes, c.per_token) for c in candidates], span,
                                  getattr(runtime, "critic_weights", None) or DEFAULT_WEIGHTS, constraints,
                                  getattr(runtime, "critic_discriminator", None), start,
                                  getattr(runtime, "critic_choice", DEFAULT_CHOICE), self.gen.sampler.rng)
        self._choose_s.append(time.perf_counter() - t0)
        self._plan_steps_s.append(planner.slowest_step_s)
        self.last_call, self.last_candidates = call, candidates
        self.last_plan_ms = planner.seconds * 1000
        self.last_plan_cut = cut
        self.plans_cut += cut
        chosen = candidates[self.last_choice.index]
        self._planned, self._plan_pos = chosen.tokens, 0
        self._drop_plan()
        if self.send_ahead is not None and self._tick_s is not None and chosen.notes:
            first = min(n.start for n in chosen.notes)
            ahead = sorted((n for n in chosen.notes if n.start == first), key=lambda n: n.pitch)
            self._sent_ahead = {(n.start, n.pitch) for n in ahead}
            self.send_ahead(Output(notes=[OutNote(n.start, n.pitch, n.velocity) for n in ahead]))

    def _time_to_answer(self, start: int) -> float | None:
        """Seconds left to finish planning the answer starting at stream tick `start`: its first notes must
        reach the port before that tick's clock does, once the plan has been chosen from (None on fake time: no
        deadline)."""
        if self._tick_s is None:
            return None
        return max(self._seconds_to(start) - self._first_notes_s() - self._finish_plan_s(), 0.0)

    def _holding_is_stale(self, now: int) -> bool:
        """Held notes or pedal with nothing else played for `stale_hold_bars`: the phrase is over (a lost
        note-off must not keep the session listening for ever)."""
        return now - self._last_player_tick >= self.params.stale_hold_bars * self.meter.ticks_per_bar

    def _start_answer(self, start: int) -> None:
        self.encoder.flush()
        if self._swap_now():
            self._swap_runtime()
        start = max(start, self.gen.grammar.tick)
        # the plan made during the silence is this answer's if nothing entered the stream since (the shift
        # to the start, next, is the one the plan's own copy of the stream took)
        planned_ahead = self._planner is not None and self._plan_for == (start, self.gen.tokens)
        self._answer_start = start
        self._answer_end = start + self.params.response_bars * self.meter.ticks_per_bar
        self._answer_cut = False
        self.encoder.shift_to(start)
        self._trigger = False
        self._phrase_has_notes = False
        self.phrases += 1
        self.state = ANSWERING
        self._planned, self._plan_pos = [], 0
        self.gen.max_polyphony = self._answer_polyphony()
        if self.params.candidates > 1:
            self._choose_answer(start, planned_ahead)
        self._previous_phrase, self._phrase_notes = self.call().notes, []

    def _sampling(self) -> SamplingParams:
        p = self.params
        scale = None
        if p.key_lock:
            call = self.call().notes
            scale = key_of_notes(call).scale if call else (key_of(self._call_pcs)[1] if self._call_pcs.sum() else None)
        return SamplingParams(temperature=p.temperature, top_p=p.top_p, low=p.low, high=p.high, scale=scale)

    def _generate(self, horizon: float, until: int | None, out: Output) -> None:
        """Antiphon's tokens up to `horizon`. On the live clock, at most GENERATE_SLICE_S per call once the
        next ticks are generated: what is due goes out first, the rest of the horizon follows in the next calls
        (a slow style's beat ahead must not hold the answer's first notes back)."""
        params = self._sampling()
        g = self.gen.grammar
        band = self.params.mode == ACCOMPANY and self.params.react
        limit = 4096  # tokens per call: the grammar always reaches the horizon long before
        t0 = time.perf_counter() if self._tick_s is not None else None
        due = self._now + self._prepare_ticks() if t0 is not None else None  # what must go out in this call
        waiting = self.input_waiting if t0 is not None else None
        while g.tick <= horizon and (until is None or g.tick < until) and limit:
            if t0 is not None and g.tick > due and (time.perf_counter() - t0 > GENERATE_SLICE_S
                                                    or waiting is not None and waiting()):
                break
            limit -= 1
            if not self._checkpoints or self._checkpoints[-1].tick < g.tick:
                self._checkpoint(end=False)
                if self._plan_pos >= len(self._planned):  # a planned answer holds its releases while it lasts
                    self._release_long_notes(out)
            if self._plan_pos < len(self._planned):  # the critic's choice, token by token: the model hears it
                token = self._planned[self._plan_pos]
                self._plan_pos += 1
            else:
                mask = self.gen.mask()
                if band:
                    mask = self._band_mask(mask, reacting=False)
                token = self.gen.sampler.sample(self.gen.logits, mask, params)
            if TIME_SHIFT <= token < VELOCITY:
                self._checkpoint(end=True)
            self._play(token, out)

    def _play(self, token: int, out: Output, at_once: bool = False) -> None:
        """Feeds one of Antiphon's own tokens; what it plays goes out (with `at_once` and an `emit` hook,
        through the hook before the model steps past it: an accompaniment note reacting to the player)."""
        def note(ev) -> None:
            if ev is None:
                return
            self._emitted.append((ev.tick, ev.pitch, ev.velocity))
            if ev.velocity:
                self._ours[ev.pitch] = ev.tick
                self._roll_on("antiphon", ev.tick, ev.pitch, ev.velocity)
            elif ev.pitch in self._ours:
                del self._ours[ev.pitch]
                self._roll_off("antiphon", ev.tick, ev.pitch)
            else:
                return
            played = OutNote(ev.tick, ev.pitch, ev.velocity)
            if ev.velocity and (ev.tick, ev.pitch) in self._sent_ahead:  # a planned answer's first note, sent
                self._sent_ahead.discard((ev.tick, ev.pitch))
                return
            if (ev.pitch, ev.velocity > 0) in self._reflex_sent:  # the port layer played it already
                self._reflex_sent.discard((ev.pitch, ev.velocity > 0))
                return
            if at_once and self.emit is not None:
                self.emit(played)
            else:
                out.notes.append(played)

        role = self._role(token, band=True)
        self._hear_player()
        self.gen.feed(token, before_step=note, role=role)
        self._remember(token, role)

    def _checkpoint(self, end: bool) -> None:
        g = self.gen.grammar
        last = self._checkpoints[-1] if self._checkpoints else None
        if last is not None and last.tick == g.tick and last.end == end:
            self._checkpoints.pop()  # the same point again (a chord's next note): the newer one holds
        self._checkpoints.append(_Checkpoint(g.tick, end, g.copy(), self.gen.state.checkpoint(), self.gen.logits.copy(),
                                             dict(self._ours), len(self.history), self._plan_pos,
                                             self.encoder.pending_state()))

    # ------------------------------------------------------------------ accompaniment that listens
    def _band_mask(self, mask: np.ndarray, reacting: bool, before: int | None = None) -> np.ndarray:
        """What the accompaniment may play next: its own notes may end, new ones must be consonant with every
        note the player sounds (as far as it is known) and keep the voicing, on the rhythm `comp` allows.
        `reacting`: at a tick the player just played on. `before`: a player token still to come at this
        tick, which the accompaniment's tokens must precede (canonical order)."""
        p = self.params
        g = self.gen.grammar
        out = np.zeros_like(mask)
        pitches = self._pitches
        onset = reacting and any(t == g.tick for t in self._player_sounding.values())
        offs = mask[NOTE_OFF:TIME_SHIFT] & self._ours_mask()
        if p.comp == "sustain" and not onset:
            offs[:] = False
        if before is not None and NOTE_OFF <= before < TIME_SHIFT:
            offs &= pitches < before - NOTE_OFF
        out[NOTE_OFF:TIME_SHIFT] = offs
        if before is None or not (NOTE_OFF <= before < TIME_SHIFT):
            ons = mask[NOTE_ON:NOTE_OFF] & self._band_pitches()
            if not self._comp_allows(g.tick, reacting, onset) or g.tick == self._quiet_tick:
                ons[:] = False
            if before is not None:
                ons &= pitches < before - NOTE_ON
            out[NOTE_ON:NOTE_OFF] = ons
            if ons.any() and not reacting:
                out[VELOCITY:VOCAB_SIZE] = mask[VELOCITY:VOCAB_SIZE]
        if not reacting:
            out[TIME_SHIFT:VELOCITY] = mask[TIME_SHIFT:VELOCITY]
            if not out.any():
                return mask
        return out

    def _band_pitches(self) -> np.ndarray:
        """Consonant, voiced and in key, for what the player sounds now (kept while that stays the same: a
        reaction asks many times within one tick)."""
        key = (self._now, self.gen.grammar.tick, tuple(sorted(self._player_sounding)), len(self._phrase_notes),
               self.params.voicing)
        if self._band_pitch_cache is None or self._band_pitch_cache[0] != key:
            self._band_pitch_cache = (key, self._consonant_pitches() & self._voicing_pitches() & self._key_pitches())
        return self._band_pitch_cache[1]

    def _comp_allows(self, tick: int, reacting: bool, onset: bool) -> bool:
        """May the accompaniment start notes at `tick`? free: anywhere; beats: on the beats; follow and
        sustain: where the player starts a note (sustain also holds its notes until the player's next)."""
        comp = self.params.comp
        if comp == "free":
            return True
        if comp == "beats":
            return tick % self.meter.ticks_per_beat == 0
        return onset

    def _ours_mask(self) -> np.ndarray:
        m = np.zeros(N_PITCHES, dtype=bool)
        m[list(self._ours)] = True
        return m

    def _consonant_pitches(self) -> np.ndarray:
        """Pitches consonant with every note the player sounds (all, when it sounds none)."""
        ok = np.ones(N_PITCHES, dtype=bool)
        for q in self._player_sounding:
            ok &= self._consonant_classes[(self._pitches - q) % 12]
        return ok

    def _key_pitches(self) -> np.ndarray:
        """Pitches in the key of what the player has played lately (all, until there is enough to tell)."""
        recent = self._phrase_notes[-KEY_CONTEXT_NOTES:]
        if len(recent) + len(self._player_sounding) < MIN_KEY_NOTES:
            return np.ones(N_PITCHES, dtype=bool)
        key = key_of_notes(recent + [Note(t, max(self._now, t + 1), p) for p, t in self._player_sounding.items()])
        return np.isin(self._pitches % 12, key.scale)

    def _voicing_pitches(self) -> np.ndarray:
        ref = list(self._player_sounding) or ([self._last_player_pitch] if self._last_player_pitch is not None else [])
        if not ref or self.params.voicing == "around":
            return np.ones(N_PITCHES, dtype=bool)
        if self.params.voicing == "below":
            return self._pitches < min(ref)
        return self._pitches > max(ref)

    def _react(self, tick: int, out: Output, reflex: bool = False) -> None:
        """The player's events at `tick` go into the stream now, with the accompaniment's own events of the
        same tick chosen around them (knowing what the player plays), and sent at once. With `reflex`, the
        port layer has reacted already (`_reflex_sent`): the stream takes that reaction instead of choosing."""
        if not self.encoder.pending:
            return
        self.encoder.move_to(tick)  # (the encoder feeds and remembers its tokens itself)
        self._checkpoint(end=False)
        params = self._sampling()
        onset = self._player_onset_at(tick)
        consonant = self._consonant_pitches()
        held_dissonant = [q for q in self._ours if not consonant[q]] if onset else []
        held_dissonant += [q for q, on in self._reflex_sent if not on and q in self._ours and q not in held_dissonant]
        self._release_long_notes(out)

        def before(token: int | None) -> None:
            while True:
                mask = self.gen.mask()
                for q in sorted(held_dissonant):  # what clashes with the note just played ends here
                    if mask[NOTE_OFF + q] and (token is None or not NOTE_OFF <= token < TIME_SHIFT
                                                or q < token - NOTE_OFF):
                        held_dissonant.remove(q)
                        self._play(NOTE_OFF + q, out, at_once=True)
                        break
                else:
                    # the player starts a note and the accompaniment sounds nothing: it must come in, below
                    # the player's lowest new note (or above the highest, voicing above)
                    first = self.params.voicing == "above" and token is None or \
                        self.params.voicing != "above" and token is not None and NOTE_ON <= token < NOTE_OFF
                    must = onset and first and not self._ours
                    if not reflex:
                        choice = self._sample_band(mask, token, params, must)
                    elif (self._reflex_on, True) in self._reflex_sent:  # the reaction's note, not yet taken
                        choice = self._reflex_choice(mask, token)
                    elif self._reflex_on is not None and self._reflex_on in self._ours:  # taken: a chord may grow
                        choice = self._sample_band(mask, token, params)
                    else:  # the reaction came in with nothing: so does the stream
                        choice = None
                    if choice is None:
                        return
                    self._play(choice, out, at_once=True)

        self.encoder.emit_tick(before)

    def _reflex_choice(self, mask: np.ndarray, before: int | None) -> int | None:
        """The note-on the port layer's reaction played, where the stream may take it now; else None."""
        band = self._band_mask(mask, reacting=True, before=before)
        return NOTE_ON + self._reflex_on if band[NOTE_ON + self._reflex_on] else None

    def _end_reflex(self, tick: int, out: Output) -> None:
        """A note the port layer's reaction started that the stream did not take ends now."""
        for q, on in sorted(self._reflex_sent):
            if on and q not in self._ours:
                ended = OutNote(tick, q, 0)
                self.emit(ended) if self.emit is not None else out.notes.append(ended)
        self._reflex_sent = set()

    def reflexes(self) -> Reflexes | None:
        """The accompaniment's reaction to each pitch the player might strike next, chosen now, for the port
        layer to play at the note itself (engine/reflexes.py); valid for a note-on at the ticks from now until
        the band's next scheduled event. None where there is nothing to arm: not accompanying, reacting off,
        `comp` beats (its onsets depend on the tick), or a player's event still waiting at this tick."""
        p = self.params
        if p.mode != ACCOMPANY or not p.react or p.comp == "beats" or self.encoder.pending:
            return None
        first = self._now
        if self.gen.grammar.tick < first:  # nothing generated ahead (the player has not played, or paused):
            # the stream waits where it is, for a bar at a time
            bar = self.meter.ticks_per_bar
            first = first // bar * bar
            last = first + 2 * bar
            logits, held, velocity_bin = self.gen.logits, dict(self._ours), self.gen.grammar.bin
            point = ("waiting", len(self.history), self.appended)
        else:
            # the band's events of this tick have gone out (a note struck on it meets them, as on the next
            # tick: the reaction is chosen after them, and the engine withdraws them when it hears the note)
            ahead = [t for t, _, _ in self._emitted if t > first]
            last = min(ahead) if ahead else max(self.gen.grammar.tick, first)
            ck = next((c for c in reversed(self._checkpoints) if c.clears(last)), None)
            if ck is None:
                return None
            logits, held, velocity_bin = ck.logits, ck.ours, ck.grammar.bin
            point = (id(ck), ck.tick, ck.end, ck.history)
        key = (first if point[0] == "waiting" else None, last, point, len(self._phrase_notes),
               tuple(sorted(self._player_sounding)), id(p), id(self.gen.runtime))
        if self._reflexes is not None and self._reflexes[0] == key:
            return self._reflexes[1]
        # the voicing against a pitch still to come is choose_reflexes' own; the notes sounding now count here
        band = (self._band_pitches() if self._player_sounding else self._key_pitches()) & allowed_pitches(self._sampling())
        if self._reflex_rng is None:
            self._reflex_rng = np.random.default_rng(int(self.gen.sampler.rng.integers(2**31)))
        starting = sorted({q for t, q, v in self._emitted if t == last and v and q not in held})
        reactions = choose_reflexes(logits, list(held), band, self._consonant_classes, p.voicing,
                                    bin_velocity(velocity_bin), p.temperature, self._reflex_rng, withdrawn=starting)
        table = Reflexes(first, last, reactions)
        self._reflexes = (key, table)
        return table

    def _player_onset_at(self, tick: int) -> bool:
        return any(t == tick for t in self._player_sounding.values())

    def _sample_band(self, mask: np.ndarray, before: int | None, params: SamplingParams,
                     must: bool = False) -> int | None:
        """One accompaniment token at this tick, or None to let the player's token (or the next tick) come:
        drawn from the model's distribution, where everything the accompaniment may not play now counts as
        'not now' (unless it `must` play: then among its note-ons)."""
        band = self._band_mask(mask, reacting=True, before=before)
        if must:
            band[:NOTE_ON] = False
            band[NOTE_OFF:] = False
        band = self.gen.sampler.restrict(band, params) if band.any() else band
        if not band.any():
            return None
        z = np.where(mask, self.gen.logits.astype(np.float64), -np.inf) / max(params.temperature, 1e-3)
        z -= z.max()
        prob = np.exp(z)
        prob /= prob.sum()
        options = np.flatnonzero(band)
        weights = np.append(prob[options], 0.0 if must else prob[mask & ~band].sum())
        if weights.sum() <= 0:
            weights[:-1] = 1.0
        if params.temperature <= 1e-3:
            pick = int(np.argmax(weights))
        else:
            order = np.argsort(-weights)
            cum = np.cumsum(weights[order])
            keep = order[:int(np.searchsorted(cum, params.top_p * cum[-1])) + 1]
            pick = int(self.gen.sampler.rng.choice(keep, p=weights[keep] / weights[keep].sum()))
        return None if pick == len(options) else int(options[pick])

    def _release_long_notes(self, out: Output) -> None:
        """At the start of a generated tick: notes held longer than max_note_beats end here."""
        g = self.gen.grammar
        longest = self.params.max_note_beats * self.meter.ticks_per_beat
        expired = [p for p, start in self._ours.items() if g.tick - start >= longest]
        for p in expired:
            del self._ours[p]
            out.notes.append(OutNote(g.tick, p, 0))
            self._emitted.append((g.tick, p, 0))
            self._roll_off("antiphon", g.tick, p)
        self._feed_offs(expired)

    @property
    def answer_window(self) -> tuple[int, int]:
        """(first tick, end tick) of the latest answer's span (0, 0 before any)."""
        return self._answer_start, self._answer_end

    @property
    def answer_sounding(self) -> bool:
        """An answer is under way: being generated, or generated (that runs `lookahead_beats` ahead of the clock)
        with notes still to go out before its end."""
        return self.params.mode == CALL_RESPONSE and not self._answer_cut and (
            self.state == ANSWERING or self._now < self._answer_end)

    def _interrupt(self, tick: int) -> Output:
        """The player plays: generated material is withdrawn (and, in call-and-response, the answer ends).
        The answer keeps what is due at `tick` itself (it may already sound), so its cut is one tick later;
        the accompaniment, reacting, withdraws `tick` too and chooses it again around the player's note."""
        if self.state == ANSWERING and self.params.mode == CALL_RESPONSE:
            out = self.release_all(tick + 1, rewind=True)
            self.answers += 1
            self.state = LISTENING
            self._answer_cut = True
            return out
        if self.params.mode == CALL_RESPONSE and not self._answer_cut and tick + 1 < self._answer_end:
            return self._cut_answer_tail(tick + 1)
        if self.params.mode == ACCOMPANY and self._checkpoints:
            return self._withdraw(tick if self.params.react else tick + 1)
        return Output()

    def _cut_answer_tail(self, cut: int) -> Output:
        """The answer was generated to its end, but its notes from `cut` on have not gone out: they are withdrawn,
        and what sounds there ends there (the stream heard the whole answer; the player now takes over)."""
        last: dict[int, bool] = {}
        for t, p, v in sorted(self._emitted):
            if t < cut:
                last[p] = bool(v)
        out = Output(cancel_from=cut)
        out.notes = [OutNote(cut, p, 0) for p in sorted(p for p, on in last.items() if on)]
        self._emitted = [e for e in self._emitted if e[0] < cut]
        self._answer_cut = True
        for key in [k for k, n in self._roll_open.items() if k[0] == "antiphon"]:
            self._roll_off("antiphon", cut, key[1])
        start = cut - self.offset
        self._roll = deque((n for n in self._roll if n.who != "antiphon" or n.start < start), maxlen=self._roll.maxlen)
        return out

    def _withdraw(self, tick: int) -> Output:
        """Accompaniment: the material generated from `tick` on is withdrawn and generated again once the
        player's event is in the stream. Notes that began before `tick` go on (their note-offs come again
        later); notes that began at `tick` or after end at `tick` (they may already have gone out)."""
        self._rollback(tick)
        out = Output(cancel_from=tick)
        out.notes += self._withdrawn_offs(tick)
        cut = tick - self.offset
        for key in [k for k, n in self._roll_open.items() if k[0] == "antiphon" and n.start >= cut]:
            del self._roll_open[key]
        if any(n.who == "antiphon" and n.start >= cut for n in reversed(self._roll)):
            self._roll = deque((n for n in self._roll if n.who != "antiphon" or n.start < cut),
                               maxlen=self._roll.maxlen)
        for p in sorted(self._ours):
            self._roll_open.setdefault(("antiphon", p), RollNote(self._ours[p] - self.offset, None, p, 64, "antiphon"))
        return out

    def _withdrawn_offs(self, tick: int) -> list[OutNote]:
        """Note-offs at `tick` for Antiphon's notes scheduled to begin at `tick` or later (now withdrawn) that
        the restored stream does not hold: whichever of them already went out must end."""
        begun = {p for t, p, v in self._emitted if t >= tick and v} - set(self._ours)
        self._emitted = [e for e in self._emitted if e[0] < tick]
        return [OutNote(tick, p, 0) for p in sorted(begun)]

    def _rollback(self, tick: int) -> None:
        """Restores the latest point of the stream holding nothing generated at `tick` or later (or, when
        none is kept, the earliest)."""
        chosen = None
        while self._checkpoints and not self._checkpoints[-1].clears(tick):
            chosen = self._checkpoints.pop()
        if self._checkpoints:
            chosen = self._checkpoints[-1]
        if chosen is None:
            return
        self.gen.grammar.copy_from(chosen.grammar)
        self.gen.state.copy_from(chosen.state)
        np.copyto(self.gen.logits, chosen.logits)
        self._ours = dict(chosen.ours)
        self._plan_pos = chosen.plan_pos
        self.encoder.restore_pending(chosen.pending)
        if len(self.history) > chosen.history:
            self.rollbacks += 1
        while len(self.history) > chosen.history:
            self.history.pop()
            self.history_roles.pop()
            self.appended -= 1

    def _swap_now(self) -> bool:
        """A waiting style takes over here, replayed on this thread: on fake time. On the live clock the engine
        replays it on a thread of its own (prepare_style, adopt_style): a slow style's replay here would take
        the answer's beat."""
        return self._pending_runtime is not None and self._switch is None and self._tick_s is None

    def _swap_runtime(self) -> None:
        """The new style takes over now, having heard the recent stream (in one forward pass: Session
        replays, milliseconds for a small style; `prepare_style` does it away from the engine thread)."""
        runtime, self._pending_runtime = self._pending_runtime, None
        switch = StyleSwitch(self, runtime)
        switch.run()
        self._adopt(switch)

    # ------------------------------------------------------------------ style switches off the engine thread
    def wants_style_replay(self) -> bool:
        """A new style is waiting and the stream is settled (listening between phrases, nothing generated
        ahead, no answer chosen that has yet to begin): the moment to `prepare_style` it."""
        return (self._pending_runtime is not None and self._switch is None and self.state == LISTENING
                and self.params.mode == CALL_RESPONSE and not self.encoder.pending
                and self._now >= self._answer_start
                and (self._refused_for is None or self._expected_start(self._now) != self._refused_for))

    def _too_near_an_answer(self, switch: "StyleSwitch") -> bool:
        """The phrase has ended and its answer is too near for the new style to plan it: adopting it would
        throw away the plan the old style has made for it, and the new one's slower steps would miss the
        first beat. Near: less time left than the new style's first notes, a choice, and three of its planning
        steps (the one it must make, the one under way at the deadline, and a first plan's slower steps)."""
        start = self._expected_start(self._now)
        if start is None or self._tick_s is None:
            return False
        step_s = float(np.median(switch.step_s)) if switch.step_s else 0.0
        return self._seconds_to(start) < self._first_notes_s(step_s) + 3 * switch.plan_step_s + max(self._choose_s)

    def prepare_style(self) -> "StyleSwitch":
        """The waiting style, to hear the stream so far: call `run()` on it on any thread, then give it back
        with `adopt_style` on this one."""
        self._switch = StyleSwitch(self, self._pending_runtime)
        return self._switch

    def adopt_style(self, switch: "StyleSwitch") -> bool:
        """The prepared style takes over, after hearing what came since it was prepared (False: the stream
        went back meanwhile, an answer is playing or too near, see `_too_near_an_answer`; the style stays
        waiting and is replayed again once the session listens). Never mid-answer: catching up on the answer's
        tokens would hold the engine thread while the answer's next notes are due (a slow style's replay
        outlasts a beat of silence)."""
        if switch is not self._switch:
            return False
        self._switch = None
        if switch.rollbacks != self.rollbacks or self.appended - switch.appended > len(self.history) \
                or self.state != LISTENING:
            return False
        if self._too_near_an_answer(switch):
            self._refused_for = self._expected_start(self._now)  # replayed again once this answer has begun
            return False
        self._refused_for = None
        self._pending_runtime = None
        self._adopt(switch)
        return True

    def _adopt(self, switch: "StyleSwitch") -> None:
        missed = self.appended - switch.appended
        tail = list(self.history)[len(self.history) - missed:] if missed else []
        tail_roles = list(self.history_roles)[len(self.history_roles) - missed:] if missed else []
        runtime, state = switch.runtime, switch.state
        logits = switch.logits
        tick = switch.tick
        self.gen.step_s.clear()  # the new style's step costs what it costs (the answer's deadline reads it)
        self.gen.step_s.extend(switch.step_s)
        self._plan_steps_s = deque([switch.plan_step_s], maxlen=PLAN_STEP_PLANS)
        for tok, role in zip(tail, tail_roles):  # what was played while it listened to the snapshot
            if TIME_SHIFT <= tok < VELOCITY:
                tick += tok - TIME_SHIFT + 1
            t0 = time.perf_counter()
            logits = runtime.step(int(tok), min(max(tick, 0) % self.meter.ticks_per_bar, N_POSITIONS - 1), state,
                                  role)
            self.gen.step_s.append(time.perf_counter() - t0)
        self.gen.runtime, self.gen.state = runtime, state
        runtime.sync_sounding(self.gen.state, self.gen.grammar.sounding)
        self.gen.logits = np.array(logits, dtype=np.float32)
        self._checkpoints.clear()
        self._drop_plan()
        self.last_switch_caught_up = missed

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
        # to a listener the answer lasts until its last tick, though its tokens were all generated before
        shown = ANSWERING if self.state == LISTENING and self.answer_sounding else self.state
        return SessionSnapshot(shown, self.params.mode, self._now - self.offset,
                               self.gen.step_ms, self.gen.tokens, self.phrases, self.answers, key,
                               tuple(self.recent_notes()[-256:]),
                               self.last_choice.summary() if self.last_choice else "", self.last_plan_ms,
                               self.device, self.last_plan_cut, self.plans_cut)
