"""The duet logic on fake time: call and response on the grid, interruption, accompaniment, locate,
stop and style switches; every note-on that would be sent has its note-off."""
import numpy as np
import pytest
import torch

from antiphon.engine.events import Meter, Note
from antiphon.engine.model import PRESETS, EventLSTM
from antiphon.engine.runtime import StepRuntime
from antiphon.engine.session import ACCOMPANY, ANSWERING, LISTENING, RELEASE_SLACK_TICKS, Session, SessionParams
from antiphon.engine.tokens import TIME_SHIFT, VELOCITY


@pytest.fixture(scope="module")
def runtime():
    torch.manual_seed(0)
    return StepRuntime(EventLSTM(PRESETS["tiny"]))


class FakePlugin:
    """What plugin/ does with a session's output: a schedule, cancellation, and 'sending' as time passes."""

    def __init__(self, session, **advance_args):
        self.session = session
        self.advance_args = advance_args  # e.g. the live clock's budget_s and tick_s
        self.scheduled = []  # (stream tick, pitch, velocity)
        self.sent = []
        self.now = 0

    def take(self, out):
        if out.cancel_from is not None:
            self.scheduled = [e for e in self.scheduled if e[0] < out.cancel_from]
        self.scheduled += [(n.tick, n.pitch, n.velocity) for n in out.notes]

    def run_to(self, song_tick):
        while self.now < song_tick:
            self.now += 1
            self.take(self.session.advance(self.now, **self.advance_args))
            due = sorted([e for e in self.scheduled if e[0] <= self.now + self.session.offset])
            self.scheduled = [e for e in self.scheduled if e[0] > self.now + self.session.offset]
            self.sent += due

    def play(self, notes, origin=0):
        events = sorted([(n.start + origin, 1, n.pitch, n.velocity) for n in notes] +
                        [(n.end + origin, 0, n.pitch, 0) for n in notes])
        for tick, on, pitch, vel in events:
            self.run_to(tick)
            self.take(self.session.note_on(tick, pitch, vel) if on else self.session.note_off(tick, pitch))

    def hanging(self):
        sounding = {}
        for _, pitch, vel in self.sent:
            sounding[pitch] = sounding.get(pitch, 0) + (1 if vel else 0)
            if not vel:
                sounding[pitch] = 0
        return {p for p, n in sounding.items() if n}


PHRASE = [Note(0, 24, 60, 90), Note(24, 48, 62, 90), Note(48, 72, 64, 90), Note(72, 120, 67, 90)]


def test_answer_starts_on_the_next_beat_after_a_beat_of_silence_and_ends_with_its_bars(runtime):
    s = Session(runtime, Meter(4, 4), SessionParams(response_bars=2, temperature=1.0), seed=1)
    fp = FakePlugin(s)
    fp.play(PHRASE)
    fp.run_to(120 + 24)  # one beat of silence after the last note-off at 120
    assert s.state == ANSWERING
    fp.run_to(120 + 24 + 2 * 96 + 48)
    assert s.state == LISTENING and s.answers == 1
    ons = [t for t, _, v in fp.sent if v]
    assert ons, "the answer played nothing"
    assert min(ons) >= 144 and min(t for t, _, _ in fp.sent) == 144  # the beat after the silence
    assert max(t for t, _, _ in fp.sent) <= 144 + 2 * 96
    assert not fp.hanging()


@pytest.mark.parametrize("late", [1, 2, 3])
def test_a_last_note_released_a_tick_or_two_after_the_beat_is_answered_on_the_next_beat(runtime, late):
    """A player (or a DAW whose client missed a cycle) lets the last note go a tick or two after the beat:
    the phrase ended on that beat, and the answer still comes a beat later, not two."""
    s = Session(runtime, Meter(4, 4), SessionParams(response_bars=1), seed=1)
    fp = FakePlugin(s)
    fp.play(PHRASE[:-1] + [Note(72, 120 + late, 67, 90)])
    fp.run_to(144 + 24)
    assert s.phrases == 1 and fp.sent
    assert min(t for t, _, _ in fp.sent) == (144 if late <= RELEASE_SLACK_TICKS else 168)


def test_player_coming_in_ends_the_answer_and_withdraws_what_was_generated_ahead(runtime):
    s = Session(runtime, Meter(4, 4), SessionParams(response_bars=8, lookahead_beats=2), seed=2)
    fp = FakePlugin(s)
    fp.play(PHRASE)
    fp.run_to(200)
    assert s.state == ANSWERING
    fp.take(s.note_on(200, 72, 100))
    assert s.state == LISTENING
    assert all(t <= 201 for t, _, _ in fp.scheduled)
    fp.run_to(210)
    fp.take(s.note_off(210, 72))
    assert not fp.hanging()
    assert not s._ours


@pytest.mark.parametrize("seed", [3, 4, 5, 6])
def test_accompaniment_plays_along_and_stays_a_valid_stream(runtime, seed):
    s = Session(runtime, Meter(4, 4), SessionParams(mode=ACCOMPANY, lookahead_beats=1, max_note_beats=2), seed=seed)
    fp = FakePlugin(s)
    fp.play([Note(i * 12, i * 12 + 10, 60 + (i % 5), 80) for i in range(40)])
    fp.run_to(40 * 12 + 48)
    assert any(v for _, _, v in fp.sent), "accompaniment played nothing"
    fp.take(s.stop())
    fp.sent += fp.scheduled
    assert not fp.hanging()


def test_stop_and_locate_release_every_note_and_keep_time_monotonic(runtime):
    s = Session(runtime, Meter(4, 4), SessionParams(response_bars=4), seed=4)
    fp = FakePlugin(s)
    fp.play(PHRASE)
    fp.run_to(180)
    out = s.stop()
    fp.take(out)
    fp.sent += [e for e in fp.scheduled if e[2] == 0]
    assert not fp.hanging()
    before = s.gen.grammar.tick
    s.locate(0)
    assert s.offset % 96 == 0 and s._stream_tick(0) > before


def test_style_switch_takes_effect_at_the_next_phrase(runtime):
    torch.manual_seed(1)
    other = StepRuntime(EventLSTM(PRESETS["tiny"]))
    s = Session(runtime, Meter(4, 4), SessionParams(response_bars=1), seed=5)
    fp = FakePlugin(s)
    fp.play(PHRASE)
    s.set_runtime(other)
    assert s.gen.runtime is runtime
    fp.run_to(120 + 24 + 96 + 48)
    assert s.gen.runtime is other
    fp.play(PHRASE, origin=400)
    fp.run_to(400 + 120 + 24 + 96 + 24)
    assert s.answers == 2 and not fp.hanging()


def test_accompaniment_stops_when_the_player_stops(runtime):
    s = Session(runtime, Meter(4, 4), SessionParams(mode=ACCOMPANY, lookahead_beats=1), seed=7)
    fp = FakePlugin(s)
    fp.play([Note(i * 24, i * 24 + 20, 60 + (i % 3), 80) for i in range(8)])
    fp.run_to(8 * 24 + 96 + 48)  # more than a bar of silence
    played_late = [t for t, _, v in fp.sent if v and t > 8 * 24 + 96 + 24]
    assert not played_late and not fp.hanging()


@pytest.mark.parametrize("rule", ["bar", "pedal", "cc"])
def test_other_phrase_end_rules(runtime, rule):
    s = Session(runtime, Meter(4, 4), SessionParams(phrase_end=rule, response_bars=1, answer_on="beat"), seed=8)
    fp = FakePlugin(s)
    if rule == "pedal":
        fp.take(s.control_change(0, 64, 127))
    fp.play(PHRASE)  # last note-off at tick 120 (bar 2, beat 2)
    fp.run_to(150)
    if rule == "bar":
        assert s.state == LISTENING  # a beat of silence is not enough: the answer waits for the bar line
        fp.run_to(192)
        assert s.state == ANSWERING and min(t for t, _, v in fp.sent if v) >= 192
        return
    assert s.state == LISTENING  # silence alone does not end the phrase under this rule
    fp.take(s.control_change(150, 64, 0) if rule == "pedal" else s.control_change(150, 80, 127))
    fp.run_to(151)
    assert s.state == ANSWERING
    fp.run_to(150 + 96 + 48)
    ons = [t for t, _, v in fp.sent if v]
    assert ons and min(ons) >= 168 and not fp.hanging()  # the next beat after the pedal/CC


def test_a_lost_note_off_does_not_keep_the_session_listening(runtime):
    """The player's last note-off never arrives (lost in a flood): after `stale_hold_bars` of nothing else
    the phrase counts as over and is answered; the late note-off, when it comes, changes nothing."""
    s = Session(runtime, Meter(4, 4), SessionParams(response_bars=1, temperature=1.0, stale_hold_bars=2), seed=3)
    fp = FakePlugin(s)
    fp.play(PHRASE[:-1])
    fp.take(s.note_on(72, 67, 90))  # held, its note-off lost
    fp.run_to(72 + 2 * 96 - 1)
    assert s.state == LISTENING, "answered before the hold went stale"
    fp.run_to(72 + 2 * 96 + 24)
    assert s.answer_window[0] == 288 and s.answer_sounding
    sent = list(fp.sent)
    fp.take(s.note_off(fp.now, 67))
    assert s.answer_sounding and fp.sent == sent  # a note-off never interrupts an answer
    fp.run_to(fp.now + 2 * 96)
    assert s.answers == 1 and not fp.hanging()


@pytest.mark.parametrize("cc", [120, 123])
def test_all_notes_off_from_the_daw_releases_what_the_player_held(runtime, cc):
    s = Session(runtime, Meter(4, 4), SessionParams(response_bars=1, temperature=1.0), seed=4)
    fp = FakePlugin(s)
    fp.play(PHRASE[:-1])
    fp.take(s.note_on(72, 67, 90))
    fp.take(s.note_on(72, 71, 90))
    fp.take(s.control_change(64, 64, 127))  # sustain down, never released
    fp.run_to(100)
    fp.take(s.control_change(100, cc, 0))
    assert not s._player_sounding and not s._pedal
    fp.run_to(100 + 48)  # one beat of silence after the All Notes Off, then the next beat
    assert s.answer_window[0] > 100 and (s.state == ANSWERING or s.answers == 1)  # answered (a short one may be done)


def test_accompaniment_reacts_within_the_tick_consonant_and_below_the_player():
    """Each note the player strikes is heard before the accompaniment chooses that tick's notes: every
    accompaniment note sounding with a player note forms a consonant interval with it, lies below it, and
    the accompaniment comes in on the player's own tick."""
    from antiphon.engine.answer_measures import consonance, coverage
    from antiphon.engine.fake_time import simulate
    from antiphon.engine.reading import corpus_phrase
    from antiphon.engine.style import load_style

    melody, meter = corpus_phrase("bach/bwv66.6", 0, 4)
    runtime = load_style("default").runtime()
    reacting = simulate(Session(runtime, meter, SessionParams(mode=ACCOMPANY), seed=1), melody, 500)
    ahead = simulate(Session(runtime, meter, SessionParams(mode=ACCOMPANY, react=False), seed=1), melody, 500)
    c_react, _ = consonance(melody, reacting)
    c_ahead, _ = consonance(melody, ahead)
    assert c_react == 1.0 and c_ahead < 0.9
    assert coverage(melody, reacting) > 0.7  # the benchmark measures it over whole chorales
    for b in reacting:
        for p in melody:
            if min(b.end, p.end) > max(b.start, p.start):
                assert b.pitch < p.pitch
    assert melody[0].start in {b.start for b in reacting}  # on the player's first tick
    # as JACK's native client plays it: the reaction armed ahead sounds at each note, the stream goes on from it
    armed = simulate(Session(runtime, meter, SessionParams(mode=ACCOMPANY), seed=1), melody, 500, reflexes=True)
    assert consonance(melody, armed)[0] == 1.0 and coverage(melody, armed) > 0.7
    assert armed != reacting


def test_a_chord_struck_one_note_at_a_time_is_reconsidered_for_each_note(runtime):
    s = Session(runtime, Meter(4, 4), SessionParams(mode=ACCOMPANY, voicing="below"), seed=9)
    fp = FakePlugin(s)
    fp.run_to(24)
    for pitch in (72, 76, 79):  # C E G arriving one after another at tick 24
        fp.take(s.note_on(24, pitch, 90))
    fp.run_to(40)
    ours_at_24 = [p for t, p, v in fp.scheduled + fp.sent if v and t == 24]
    for p in ours_at_24:
        assert p < 72 and all((p - q) % 12 in (0, 3, 4, 5, 7, 8, 9) for q in (72, 76, 79))
    assert s.gen.grammar.sounding[[72, 76, 79]].all()  # the stream holds the whole chord
    fp.take(s.stop())
    fp.sent += fp.scheduled
    assert not fp.hanging()


def test_a_style_prepared_on_another_thread_takes_over_and_hears_what_came_meanwhile():
    """Switching to the heavy jsb-quarter ensemble: its replay runs on a worker thread while the player
    plays on; adopting it steps only what came since, and the state equals hearing the stream directly."""
    import threading

    from antiphon.engine.style import load_style

    s = Session(load_style("default").runtime(), Meter(4, 4), SessionParams(response_bars=1), seed=2)
    fp = FakePlugin(s)
    fp.play(PHRASE)
    fp.run_to(400)  # answered, listening again
    jsb = load_style("jsb-quarter").runtime()
    s.set_runtime(jsb)
    assert s.wants_style_replay()
    switch = s.prepare_style()
    worker = threading.Thread(target=switch.run)
    worker.start()
    fp.play([Note(0, 12, 67, 90), Note(12, 24, 69, 90)], origin=410)  # the player goes on meanwhile
    worker.join()
    assert s.gen.runtime is not jsb  # not yet: the old style still plays
    assert s.adopt_style(switch)
    assert s.gen.runtime is jsb and s.last_switch_caught_up > 0
    stepped = jsb.initial_state()
    tokens = switch.tokens + list(s.history)[len(s.history) - s.last_switch_caught_up:]
    positions = switch.positions + []
    tick = switch.tick
    for tok in tokens[len(switch.tokens):]:
        if TIME_SHIFT <= tok < VELOCITY:
            tick += tok - TIME_SHIFT + 1
        positions.append(tick % 96)
    for tok, pos in zip(tokens, positions):
        jsb.step(int(tok), int(pos), stepped)
    jsb.sync_sounding(stepped, s.gen.grammar.sounding)
    np.testing.assert_allclose(s.gen.state.members[0].h, stepped.members[0].h, atol=1e-3)
    fp.run_to(600)
    assert not fp.hanging()


def test_a_new_styles_deadlines_read_its_own_step_costs_before_it_has_stepped():
    """A style adopted in the silence before an answer has not stepped the stream once: the answer's deadline
    (its first notes, and a plan cut there finishing its step) must read the new style's costs, timed on the
    replay's thread, not none at all."""
    from antiphon.engine.style import load_style

    s = Session(load_style("default").runtime(), Meter(4, 4), SessionParams(response_bars=1, candidates=16), seed=2)
    fp = FakePlugin(s)
    fp.play(PHRASE)
    fp.run_to(400)  # answered, listening again
    s.set_runtime(load_style("jsb-quarter").runtime())
    switch = s.prepare_style().run()
    assert len(switch.step_s) == 3 and switch.plan_step_s > 0
    assert s.adopt_style(switch) and s.last_switch_caught_up == 0  # nothing played meanwhile
    assert s.gen.step_ms == pytest.approx(float(np.median(switch.step_s)) * 1000)
    assert s._finish_plan_s() >= switch.plan_step_s


def test_a_style_replayed_while_an_answer_plays_waits_for_the_next_phrase(runtime):
    """A slow style's replay that returns mid-answer is not adopted there (catching up on the answer's tokens
    would hold the engine thread while the answer's notes are due): it is replayed again once the session
    listens, and takes over then."""
    s = Session(runtime, Meter(4, 4), SessionParams(response_bars=2), seed=2)
    fp = FakePlugin(s, tick_s=1.0)  # the live clock (a slow one): the switch is replayed off the engine thread
    fp.play(PHRASE)
    fp.run_to(100)
    other = StepRuntime(EventLSTM(PRESETS["tiny"]))
    s.set_runtime(other)
    switch = s.prepare_style().run()
    fp.run_to(150)  # the answer has begun meanwhile
    assert s.state == ANSWERING
    assert not s.adopt_style(switch)
    assert s.gen.runtime is runtime and s._pending_runtime is other and not s.wants_style_replay()
    adopted_at = None
    for tick in range(151, 144 + 2 * 96 + 8):  # as the plugin's engine loop does, before each advance
        if s.wants_style_replay():
            assert s.state == LISTENING and s.answers == 1  # once the answer is generated to its end
            assert s.adopt_style(s.prepare_style().run())
            adopted_at = tick
        fp.run_to(tick)
    assert adopted_at is not None and s.gen.runtime is other


def test_a_style_replayed_back_just_before_an_answer_leaves_that_answer_to_the_old_style(runtime):
    """A replay that comes back in the silence too near the answer's first beat is not adopted (the new style
    would throw away the plan made for it and plan again with its own steps, too late), nor replayed again in
    that silence; it takes over once the answer has begun and the session listens. With time to spare before
    the beat, the same replay is adopted in the silence."""
    other = StepRuntime(EventLSTM(PRESETS["tiny"]))
    s = Session(runtime, Meter(4, 4), SessionParams(response_bars=1), seed=2)
    fp = FakePlugin(s, tick_s=0.005)  # 500 BPM: the beat is 120 ms
    fp.play(PHRASE)
    fp.run_to(125)  # the phrase ended at 120, its answer is due at 144: 95 ms from now
    assert s.state == LISTENING and s._expected_start(125) == 144
    s.set_runtime(other)
    switch = s.prepare_style().run()
    switch.plan_step_s = 0.05  # as if the new style's planning step took 50 ms on this machine
    assert not s.adopt_style(switch)
    assert s.gen.runtime is runtime and s._pending_runtime is other
    adopted_at = None
    for tick in range(126, 144 + 96 + 8):  # as the plugin's engine loop does, before each advance
        if s.wants_style_replay():
            assert tick > 144 and s.answers == 1  # not in that silence: after the answer
            assert s.adopt_style(s.prepare_style().run())
            adopted_at = tick
        fp.run_to(tick)
    assert adopted_at is not None and s.gen.runtime is other

    slow = Session(runtime, Meter(4, 4), SessionParams(response_bars=1), seed=2)
    fp = FakePlugin(slow, tick_s=1.0)  # 19 s to the beat
    fp.play(PHRASE)
    fp.run_to(125)
    slow.set_runtime(other)
    assert slow.wants_style_replay()
    switch = slow.prepare_style().run()
    switch.plan_step_s = 0.05
    assert slow.adopt_style(switch) and slow.gen.runtime is other


def test_a_replay_made_stale_by_a_rollback_is_refused(runtime):
    s = Session(runtime, Meter(4, 4), SessionParams(response_bars=1), seed=2)
    fp = FakePlugin(s)
    fp.play(PHRASE)
    fp.run_to(400)
    s.set_runtime(runtime)
    switch = s.prepare_style().run()
    s.rollbacks += 1  # the stream went back meanwhile (an interruption, in accompaniment)
    assert not s.adopt_style(switch)
    assert s._pending_runtime is runtime and s.wants_style_replay()


def test_reacting_notes_go_out_before_the_model_steps_past_them():
    from antiphon.engine.style import load_style

    s = Session(load_style("default").runtime(), Meter(4, 4), SessionParams(mode=ACCOMPANY), seed=3)
    sent = []
    s.emit = lambda note: sent.append((note, s.gen.tokens))
    s.advance(0)
    s.advance(24)
    before = s.gen.tokens
    out = s.note_on(24, 72, 90)
    assert sent, "the accompaniment did not come in with the player's note"
    first, tokens_then = sent[0]
    assert first.tick == 24 and first.velocity and first.pitch < 72
    assert tokens_then >= before  # it went out during this note_on ...
    assert all(n not in out.notes for n, _ in sent)  # through the hook only
    assert tokens_then < s.gen.tokens  # the model stepped past it after it went out


CONSONANT_CLASSES = (0, 3, 4, 5, 7, 8, 9)


def _accompanying(seed: int, **params):
    from antiphon.engine.style import load_style

    s = Session(load_style("default").runtime(), Meter(4, 4), SessionParams(mode=ACCOMPANY, **params), seed=seed)
    sent = []
    s.emit = lambda note: sent.append((note.tick, note.pitch, note.velocity))
    fp = FakePlugin(s)
    fp.play([Note(0, 12, 67, 90), Note(12, 24, 64, 90), Note(24, 36, 62, 90)])
    fp.run_to(40)
    return s, fp, sent


def test_reflexes_are_chosen_ahead_for_every_pitch_consonant_below_and_in_the_stream():
    """The port layer plays the table's reaction at the player's note; the stream then plays on from it:
    the reaction's note is in the stream (not sent again), what it ended is not sounding, and everything the
    band sounds with the player's note is consonant with it and below it."""
    came_in = 0
    for seed in range(6):
        s, fp, sent = _accompanying(seed)
        table = s.reflexes()
        assert table is not None and table is s.reflexes()  # chosen once while nothing changes
        assert table.first_tick <= 40 + s.offset <= table.last_tick
        assert sorted(table.reactions) == list(range(128))
        for p, reaction in table.reactions.items():
            ons = [q for q, v in reaction if v]
            assert len(ons) <= 1 and all(q < p and (p - q) % 12 in CONSONANT_CLASSES for q in ons)
            assert [v for _, v in reaction] == sorted((v for _, v in reaction), key=bool)  # offs first
        pitch = 72
        reaction = table.reactions[pitch]
        before = len(sent)
        fp.take(s.note_on(40, pitch, 90, reflex=reaction))
        on = [q for q, v in reaction if v]
        if on:
            came_in += 1
            assert s.gen.grammar.sounding[on[0]] and on[0] in s._ours  # the stream holds what was heard
            assert (40 + s.offset, on[0], reaction[-1][1]) not in sent[before:]  # not sent a second time
        for q, v in reaction:
            if not v:
                assert q not in s._ours or q in on
        for q in s._ours:
            assert q < pitch and (pitch - q) % 12 in CONSONANT_CLASSES, (seed, reaction, s._ours)
        fp.take(s.stop())
    assert came_in >= 3


def test_a_reflex_the_stream_cannot_take_ends_at_once():
    s, fp, sent = _accompanying(1)
    before = len(sent)
    fp.take(s.note_on(40, 72, 90, reflex=((73, 90),)))  # a semitone above the player: not the band's
    assert (40 + s.offset, 73, 0) in sent[before:]
    assert 73 not in s._ours and not s.gen.grammar.sounding[73]


def test_reflexes_only_where_the_band_reacts_to_the_player(runtime):
    assert _accompanying(1)[0].reflexes() is not None
    assert _accompanying(1, react=False)[0].reflexes() is None
    assert _accompanying(1, comp="beats")[0].reflexes() is None
    s = Session(runtime, Meter(4, 4), SessionParams(), seed=1)
    FakePlugin(s).run_to(40)
    assert s.reflexes() is None  # call and response


def test_a_loop_withdraws_the_answer_keeps_what_was_heard_and_answers_the_phrase_over_it(runtime):
    """A DAW loops back (Song Position Pointer while rolling): the answer under way ends at the jump; the stream
    (the model's state, its memory) goes on from everything heard; the phrase played over the loop is a new call."""
    s = Session(runtime, Meter(4, 4), SessionParams(response_bars=1), seed=4)
    fp = FakePlugin(s)
    fp.play(PHRASE)
    fp.run_to(120 + 24 + 30)  # the answer is under way
    assert s.answer_sounding
    fp.take(s.stop())
    fp.sent += [e for e in fp.scheduled if e[2] == 0]
    fp.scheduled = []
    assert not fp.hanging()
    heard, answers = s.gen.state.stepped, s.answers
    fp.take(s.locate(0))  # the loop: song tick 0 again
    fp.now = 0
    assert s.gen.state.stepped == heard  # nothing heard is forgotten
    before = len(fp.sent)
    fp.play(PHRASE)
    fp.run_to(120 + 24 + 96 + 24)
    answer = [e for e in fp.sent[before:] if e[2]]
    assert s.answers > answers and answer, "the phrase over the loop was not answered"
    assert min(e[0] for e in answer) - s.offset == 144  # on its beat: a beat after the call, on the new timeline


def test_a_note_after_the_answer_is_generated_but_before_it_has_sounded_cuts_its_tail(runtime):
    """The answer is generated `lookahead_beats` ahead: once its last token is out, its last notes still wait for
    their ticks. The player's note-on then withdraws them, and what sounds ends a tick after the note."""
    s = Session(runtime, Meter(4, 4), SessionParams(response_bars=1, lookahead_beats=2), seed=4)
    fp = FakePlugin(s)
    fp.play(PHRASE)
    end = 120 + 24 + 96
    tick = next(t for t in range(120 + 24, end) if (fp.run_to(t) or True) and s.state != ANSWERING)
    assert tick < end - 1 and s.answer_sounding  # generated to its end, not yet all sounded
    fp.take(s.note_on(tick, 72, 90))
    assert not s.answer_sounding
    assert not [e for e in fp.scheduled if e[2] and e[0] > tick + 1 + s.offset], "the tail was not withdrawn"
    fp.run_to(end + 48)
    fp.take(s.note_off(tick + 6, 72))
    fp.sent += [e for e in fp.scheduled if e[2] == 0]
    assert not (fp.hanging() - {72})


def test_the_view_says_answering_until_the_answers_last_tick(runtime):
    """The answer's tokens are all generated a beat ahead of the clock; the panel and the status line go on
    saying "answering" while its notes are still to sound, and "listening" once its span is over."""
    s = Session(runtime, Meter(4, 4), SessionParams(response_bars=1, candidates=4), seed=3)
    fp = FakePlugin(s)
    fp.play(PHRASE)
    start = None
    for tick in range(121, 144 + 96 + 4):
        fp.run_to(tick)
        if s.answer_window[1] and start is None:
            start, end = s.answer_window
        if start is not None and tick < end:
            assert s.snapshot().state == ANSWERING, (tick, s.state)
    assert start is not None and s.state == LISTENING and s.snapshot().state == LISTENING
