"""Planned answers on fake time: K candidates sampled from the listened state, the critic's choice is what
plays (and what the model hears), planning starts when the silence begins and is dropped if the player
plays on, interruptions roll back as before, and constraints filter."""
import numpy as np
import pytest
import torch

from antiphon.engine import answer_measures as am
from antiphon.engine.critic import DEFAULT_WEIGHTS, TERMS, Call, Constraints, choose, weights_from
from antiphon.engine.events import Meter, Note
from antiphon.engine.fake_time import simulate
from antiphon.engine.model import PRESETS, EventLSTM
from antiphon.engine.runtime import StepRuntime
from antiphon.engine.session import ANSWERING, LISTENING, Session, SessionParams
from antiphon.engine.style import load_style
from tests.test_session import PHRASE, FakePlugin


@pytest.fixture(scope="module")
def runtime():
    torch.manual_seed(0)
    return StepRuntime(EventLSTM(PRESETS["tiny"]))


@pytest.fixture(scope="module")
def default_runtime():
    return load_style("default").runtime()


def test_what_plays_is_the_chosen_candidate_and_the_model_hears_it(default_runtime):
    s = Session(default_runtime, Meter(4, 4), SessionParams(candidates=8, response_bars=2), seed=5)
    call_end = max(n.end for n in PHRASE)
    answer = simulate(s, PHRASE, call_end + 4 * 96)
    chosen = s.last_candidates[s.last_choice.index]
    assert s.answers == 1 and 4 <= len(s.last_candidates) <= 8  # laggards may be pruned
    assert answer and answer == chosen.notes
    # the stream holds the chosen tokens right after the silence, in order
    history = list(s.history)
    n = len(chosen.tokens)
    assert any(history[i:i + n] == chosen.tokens for i in range(len(history) - n + 1))


def test_a_plan_out_of_time_plays_its_best_start_on_the_beat_and_samples_the_rest(default_runtime):
    """On the live clock, a plan still running when its answer is due stops in time for the first beat: the
    critic chooses among the candidates as far as they came, that start plays, the model samples on."""
    def answer(**live_clock):
        s = Session(default_runtime, Meter(4, 4), SessionParams(candidates=16, response_bars=4), seed=4)
        fp = FakePlugin(s, **live_clock)
        fp.play(PHRASE)  # the last note-off at 120: the answer is due at 144, for 4 bars
        fp.run_to(144 + 4 * 96 + 2)
        return s, fp

    s, fp = answer()  # fake time: no deadline, every candidate complete
    assert not s.last_plan_cut and all(c.finished for c in s.last_candidates)
    # a clock so fast that each tick leaves no time: one planning step per tick of silence, one at the beat
    # (about 22 steps, where 4 bars take some 70)
    s, fp = answer(budget_s=0.0, tick_s=1e-6)
    chosen = s.last_candidates[s.last_choice.index]
    assert s.last_plan_cut and s.plans_cut == 1 and s.snapshot().plan_cut
    assert not chosen.finished and len(chosen.tokens) > 0
    history = list(s.history)
    n = len(chosen.tokens)
    at = next(i for i in range(len(history) - n + 1) if history[i:i + n] == chosen.tokens)
    assert len(history) > at + n  # sampled on after the plan's start
    assert s.answers == 1 and s.state == LISTENING  # and reached the answer's end
    ons = [t for t, _, v in fp.sent if v]
    assert ons and min(ons) >= 144 + s.offset and max(ons) < 144 + 4 * 96 + s.offset
    assert not fp.hanging()



def test_a_planned_answers_first_notes_go_out_before_the_model_steps_through_them(default_runtime):
    """On the live clock the critic's choice is known before the stream has stepped through it: its first
    onset's notes go to the plugin at once (a slow style's steps must not hold the first beat back), and are
    not sent again when the stream reaches them. What goes out is the same, note for note."""
    def run(hook: bool):
        s = Session(default_runtime, Meter(4, 4), SessionParams(candidates=8, response_bars=2), seed=3)
        fp = FakePlugin(s, tick_s=1.0)  # a slow clock: deadlines far away, the same plan either way
        ahead = []
        if hook:
            def send_ahead(out):
                ahead.append(([(n.tick, n.pitch, n.velocity) for n in out.notes], s._plan_pos, len(s._planned)))
                fp.take(out)
            s.send_ahead = send_ahead
        fp.play(PHRASE)
        fp.run_to(144 + 2 * 96 + 2)
        return s, fp, ahead

    plain, plain_fp, _ = run(hook=False)
    s, fp, ahead = run(hook=True)
    assert s.answers == plain.answers == 1
    assert len(ahead) == 1
    notes, stepped, planned = ahead[0]
    chosen = s.last_candidates[s.last_choice.index]
    first = min(n.start for n in chosen.notes)
    assert stepped == 0 and planned == len(chosen.tokens)  # sent before the stream took a single planned token
    assert notes == [(first, n.pitch, n.velocity) for n in chosen.notes if n.start == first]  # stream ticks
    assert all(v > 0 for _, _, v in notes)
    assert fp.sent == plain_fp.sent  # nothing twice, nothing missing
    assert not fp.hanging()


def test_a_plan_cut_at_its_deadline_leaves_time_for_the_critic_to_choose(runtime, monkeypatch):
    """The deadline a plan is cut at allows for choosing among its candidates, as long as choosing took on the
    last plans (a four-voice call's 16 candidates take the critic milliseconds): the first notes still go
    out before their tick."""
    import time as clock

    from antiphon.engine import session as session_module

    slow = 0.03
    real_choose = session_module.choose

    def slow_choose(*args, **kwargs):
        clock.sleep(slow)
        return real_choose(*args, **kwargs)

    monkeypatch.setattr(session_module, "choose", slow_choose)
    s = Session(runtime, Meter(4, 4), SessionParams(candidates=4, response_bars=1), seed=1)
    deadlines = []
    real_time_to_answer = s._time_to_answer

    def time_to_answer(start):
        budget = real_time_to_answer(start)
        deadlines.append(((start - s.offset - s._song_tick) * s._tick_s, budget))
        return budget

    s._time_to_answer = time_to_answer
    fp = FakePlugin(s, budget_s=0.0, tick_s=0.01)
    fp.play(PHRASE)
    fp.run_to(144 + 96 + 2)  # the first answer: choosing is found to take 30 ms
    fp.play(PHRASE, origin=288)
    fp.run_to(288 + 144 + 96 + 2)
    assert s.answers == 2 and len(deadlines) == 2
    left, budget = deadlines[-1]
    assert budget + slow + s._first_notes_s() <= left + 1e-9


def test_planning_starts_when_the_silence_begins_and_is_dropped_if_the_player_plays_on(runtime):
    s = Session(runtime, Meter(4, 4), SessionParams(candidates=4, response_bars=1), seed=1)
    fp = FakePlugin(s)
    fp.play(PHRASE)  # ends with a note-off at 120; the answer is due at 144
    fp.run_to(122)
    assert s._planner is not None and s._planner.done, "no plan made during the silence"
    assert s.state == LISTENING
    fp.take(s.note_on(126, 65, 90))  # the player goes on
    assert s._planner is None
    fp.take(s.note_off(140, 65))
    fp.run_to(142)
    assert s._planner is not None and s._plan_for[0] == 168  # a new plan for the new expected start
    fp.run_to(170)
    assert s.answer_sounding and s.phrases == 1 and s.answer_window[0] == 168


def test_interrupting_a_planned_answer_rolls_back_and_leaves_nothing_hanging(runtime):
    s = Session(runtime, Meter(4, 4), SessionParams(candidates=6, response_bars=4, lookahead_beats=2), seed=2)
    fp = FakePlugin(s)
    fp.play(PHRASE)
    fp.run_to(200)
    assert s.state == ANSWERING and s._planned
    before = s.gen.grammar.tick
    fp.take(s.note_on(200, 72, 100))
    assert s.state == LISTENING and not s._planned
    assert s.gen.grammar.tick <= 201 < before  # the stream forgot what was planned past the player's note
    fp.take(s.note_off(220, 72))
    fp.run_to(264 + 4 * 96 + 24)  # the next answer (planned anew) ends
    assert s.answers == 2 and s.state == LISTENING
    assert not fp.hanging()


def test_one_candidate_is_todays_sampling_without_a_plan(runtime):
    s = Session(runtime, Meter(4, 4), SessionParams(candidates=1, response_bars=1), seed=3)
    simulate(s, PHRASE, 400)
    assert s.answers == 1 and s.last_choice is None and s._planner is None


def test_constraints_filter_and_fall_back():
    meter = Meter(4, 4)
    call = Call([Note(0, 24, 60), Note(24, 48, 64), Note(48, 72, 67), Note(72, 96, 72), Note(96, 192, 60)], meter)
    assert call.key.name == "C major"
    on_tonic = [Note(200, 224, 62), Note(224, 300, 60)]
    on_third = [Note(200, 224, 62), Note(224, 300, 64)]
    far = [Note(200, 224, 86), Note(224, 300, 88)]  # ends on E6: stable, not the tonic, far above
    off_key = [Note(200, 224, 61), Note(224, 300, 66)]
    cands = [(on_third, -0.1), (on_tonic, -2.0), (far, 0.0), (off_key, 0.0)]
    assert choose(call, cands, 192, constraints=Constraints(end_on="tonic")).index == 1
    assert choose(call, cands, 192, constraints=Constraints(end_on="stable", register="follow")).index == 0
    picked = choose(call, cands[3:], 192, constraints=Constraints(end_on="tonic", key_lock=True))
    assert picked.index == 0 and picked.passed == [True, False, True, False]  # nothing passes: the best of the rest
    explained = picked.explain()
    assert set(explained["terms"]) == set(TERMS) and explained["of"] == 1


def test_the_critic_refuses_loops_whatever_its_weights_and_an_echo_is_its_weights_call():
    meter = Meter(4, 4)
    call_notes = [Note(i * 24, i * 24 + 24, p) for i, p in enumerate([60, 62, 64, 65, 67, 65, 64, 62, 60])]
    call = Call(call_notes, meter)
    assert call.key.name == "C major"
    loop = [Note(200 + i * 12, 212 + i * 12, 64 if i % 2 else 63) for i in range(12)]
    echo = [Note(n.start + 216, n.end + 216, n.pitch) for n in call_notes]
    answer = [Note(216 + i * 24, 240 + i * 24, p) for i, p in enumerate([64, 65, 67, 69, 67, 64, 62, 60])]
    assert am.loops(loop) and not am.loops(answer)
    assert am.longest_echo(call_notes, echo) == 9 and am.longest_echo(call_notes, answer) < am.ECHO_NOTES
    picked = choose(call, [(loop, 0.0), (answer, -3.0)], 192)
    assert picked.index == 1 and picked.passed[0]  # the loop is out before any weight is read
    assert picked.terms["cadence"] != 0  # it ends on C
    # an echo of the call: real tunes take their opening up again, so the fitted weights decide
    refusing = dict(DEFAULT_WEIGHTS, echo=100.0)
    taking = dict(DEFAULT_WEIGHTS, echo=-10.0)
    assert choose(call, [(echo, 0.0), (answer, -0.3)], 192, refusing).index == 1
    assert choose(call, [(echo, 0.0), (answer, -0.3)], 192, taking).index == 0


def test_the_measures_the_critic_reads_on_crafted_lines():
    """Exact values on small passages: the echo (a run of the call copied in pitch and rhythm, wherever it sits
    in the answer), the two-pitch run, polyphony at the onsets, and the same with the melody given."""
    call = [Note(i * 24, i * 24 + 24, p) for i, p in enumerate([60, 62, 64, 65, 67, 65, 64, 62])]
    copied = [Note(480 + i * 24, 504 + i * 24, p) for i, p in enumerate([62, 64, 65, 67])]  # D E F G, same rhythm
    answer = [Note(384, 408, 72), Note(408, 432, 71)] + [Note(n.start + 48, n.end + 48, n.pitch) for n in copied]
    line = am.melody(answer)
    assert am.longest_echo(call, answer) == am.longest_echo(call, answer, am.melody(call), line) == 4
    stretched = [Note(480 + i * 36, 516 + i * 36, p) for i, p in enumerate([62, 64, 65, 67])]  # other rhythm
    assert am.longest_echo(call, stretched) == 1
    assert am.longest_echo(call, [Note(0, 24, 50)]) == 0
    trill = [Note(i * 12, i * 12 + 12, 64 if i % 2 else 63) for i in range(9)] + [Note(108, 120, 70)]
    assert am.longest_two_pitch_run(trill) == am.longest_two_pitch_run(trill, am.melody(trill)) == 9
    chords = [Note(0, 48, 48), Note(0, 24, 60), Note(0, 24, 64), Note(24, 48, 62), Note(48, 72, 60)]
    assert am.polyphony(chords) == pytest.approx((3 + 2 + 1) / 3) and am.polyphony([]) == 0.0


def test_style_critic_weights_are_checked():
    assert weights_from({"critic": {"weights": {"key_fit": 3.0}}})["key_fit"] == 3.0
    for bad in ({"critic": {"weights": {"exec": 1}}}, {"critic": {"weights": {"key_fit": "1"}}},
                {"critic": {"weights": {"key_fit": float("nan")}}}, {"critic": []}):
        with pytest.raises(ValueError):
            weights_from(bad)


def test_planned_answers_are_reproducible_with_a_seed(default_runtime):
    answers = []
    for _ in range(2):
        s = Session(default_runtime, Meter(4, 4), SessionParams(candidates=4), seed=11)
        answers.append(simulate(s, PHRASE, 600))
    assert answers[0] == answers[1] and answers[0]


def test_the_plan_made_in_the_silence_is_the_one_played(runtime):
    """Planning during the silence must not be thrown away at the answer's start: the session plays the
    plan it already made (no second plan on the engine thread three ticks before the beat)."""
    s = Session(runtime, Meter(4, 4), SessionParams(candidates=4, response_bars=1), seed=6)
    fp = FakePlugin(s)
    fp.play(PHRASE)
    fp.run_to(125)
    early = s._planner
    assert early is not None and early.done
    fp.run_to(150)
    assert s.state == ANSWERING
    assert s.last_candidates and s.last_candidates[0].tokens == early.candidates()[0].tokens
    assert s.last_plan_ms == pytest.approx(early.seconds * 1000)


def test_the_call_is_bounded_and_a_start_begins_a_new_one(runtime):
    s = Session(runtime, Meter(4, 4), SessionParams(candidates=2, response_bars=1), seed=7)
    fp = FakePlugin(s)
    fp.play([Note(i * 2, i * 2 + 1, 60 + i % 12, 90) for i in range(2000)])  # a flood, 1,000 bars' worth
    assert len(s._phrase_notes) <= 4 * 64 and len(s.call().notes) <= 64
    s.locate(fp.now)
    assert not s.call().notes


def test_no_planned_candidate_loops_on_two_pitches(runtime):
    """A candidate's melody never holds 8 notes on two pitches, even when every draw leans towards two: a tilt
    of +8 on E4's and D#4's note-ons and note-offs (half of these candidates loop without the rule)."""
    from antiphon.engine.generator import Generator
    from antiphon.engine.planner import Planner
    from antiphon.engine.sampler import SamplingParams
    from antiphon.engine.tokens import NOTE_OFF, NOTE_ON, TIME_SHIFT, VELOCITY, VOCAB_SIZE

    bias = np.zeros(VOCAB_SIZE, dtype=np.float32)
    bias[[NOTE_ON + 63, NOTE_ON + 64, NOTE_OFF + 63, NOTE_OFF + 64]] = 8.0
    bias[TIME_SHIFT:VELOCITY] = 2.0
    gen = Generator(runtime, Meter(4, 4), seed=3)
    planner = Planner(gen, 8, 4 * 96, SamplingParams(temperature=1.0), np.random.default_rng(3), bias=bias)
    planner.run()
    candidates = planner.candidates()
    lines = [[n.pitch for n in am.melody(c.notes)] for c in candidates]
    assert len(candidates) >= 6 and all(len(line) >= 6 for line in lines), lines
    assert np.mean([p in (63, 64) for line in lines for p in line]) > 0.8, lines  # they play those two, mostly
    assert not any(am.loops(c.notes) for c in candidates), lines


@pytest.mark.parametrize("candidates", [1, 8])
def test_an_answer_sounds_no_more_notes_at_once_than_its_call(runtime, candidates):
    """A melody is answered with a melody, a chord call may be answered in chords (`polyphony` "call");
    "free" lets the model stack what it likes (an untrained one stacks notes at random)."""
    melody = [Note(i * 24, i * 24 + 24, p) for i, p in enumerate([67, 69, 71, 72, 74, 72, 71, 69, 67, 66, 67, 69])]
    chords = [Note(i * 96, i * 96 + 96, p + d) for i, p in enumerate([60, 65, 67, 60]) for d in (0, 4, 7)]
    most = {}
    for name, call in (("melody", melody), ("chords", chords)):
        for polyphony in ("call", "free"):
            widest = 0
            for seed in range(3):
                s = Session(runtime, Meter(4, 4), SessionParams(candidates=candidates, polyphony=polyphony),
                            seed=seed)
                end = max(n.end for n in call)
                answer = [n for n in simulate(s, call, end + 3 * 96) if n.start >= end]
                assert answer
                widest = max(widest, am.max_sounding(answer))
            most[name, polyphony] = widest
    assert most["melody", "call"] == 1 and most["chords", "call"] <= 3
    assert most["melody", "free"] > 1  # the rule is what keeps it to one line
