"""The answer benchmark's yardstick (training/realism.py) and the critic's realism discriminator
(engine/discriminator.py): each told apart from what it must not confuse."""
import json

import numpy as np
import pytest

from antiphon.engine.critic import Call, choose
from antiphon.engine.discriminator import FEATURES, CallSummary, Discriminator, features
from antiphon.engine.events import Meter, Note
from antiphon.training import realism
from antiphon.training.discriminator_fit import cross_validated, fit


def notes(pitches, start=0, step=24):
    return [Note(start + i * step, start + (i + 1) * step, p) for i, p in enumerate(pitches)]


def test_a_stall_is_every_three_notes_on_two_pitches_over_eight_or_more():
    # answers the issue quoted: six quarters on one pitch; a pitch pair rocking for nine notes
    assert realism.longest_stall([60, 62, 62, 62, 62, 62, 62, 65]) == 8
    assert realism.longest_stall([65, 69, 65, 69, 69, 69, 67, 69, 69]) == 9
    assert realism.longest_stall([60, 62, 64, 65, 67, 69, 71, 72]) == 0
    call = notes([60, 62, 64, 65, 67, 65, 64, 62])
    stalled = notes([62, 62, 62, 62, 62, 62, 62, 65], start=192)
    moving = notes([64, 67, 69, 67, 65, 64, 62, 60], start=192)
    m = realism.MEASURES.index("stall")
    assert realism.measures(call, stalled, Meter(), 192, 192)[m] == 1.0
    assert realism.measures(call, moving, Meter(), 192, 192)[m] == 0.0


def test_measures_of_an_answer_given_its_call():
    call = notes([60, 62, 64, 65, 67, 65, 64, 62])
    answer = notes([72, 72, 74, 76], start=192, step=48)
    x = dict(zip(realism.MEASURES, realism.measures(call, answer, Meter(), 192, 192)))
    assert x["notes_per_beat"] == pytest.approx(0.5)
    assert x["density_vs_call"] == pytest.approx(np.log(0.6 / 1.1))
    assert (x["unison"], x["step"]) == (pytest.approx(1 / 3), pytest.approx(2 / 3))
    assert x["register_shift"] == pytest.approx(73 - 64)
    assert x["len_half"] == 1.0 and x["rest_share"] == 0.0 and x["first_onset"] == 0.0
    assert x["new_pitch_classes"] == pytest.approx(0.0)


def test_the_two_sample_test_tells_apart_what_differs_and_not_what_does_not():
    rng = np.random.default_rng(1)
    a = rng.normal(0, 1, (60, len(realism.MEASURES)))
    same = rng.normal(0, 1, (60, len(realism.MEASURES)))
    shifted = same + np.r_[2.5, np.zeros(len(realism.MEASURES) - 1)]
    assert abs(realism.cv_accuracy(a, same) - 0.5) < 0.12
    assert realism.cv_accuracy(a, shifted) > 0.8
    result = realism.two_sample(shifted, a)
    assert set(result) >= {"accuracy", "real_vs_real"} and abs(result["real_vs_real"] - 0.5) < 0.15


def test_two_sided_comparison_fails_a_mean_above_the_real_as_much_as_one_below():
    rng = np.random.default_rng(2)
    real = rng.normal(0, 1, (80, len(realism.MEASURES)))
    for shift in (+1.0, -1.0):
        out = realism.compare(real + shift, real)
        assert not any(v["within"] for v in out.values())
    assert sum(v["within"] for v in realism.compare(real[rng.permutation(80)], real).values()) == len(realism.MEASURES)


def _toy_discriminator(feature: str, sign: float) -> Discriminator:
    coef = np.zeros(len(FEATURES))
    coef[FEATURES.index(feature)] = sign
    return Discriminator(np.zeros(len(FEATURES)), np.ones(len(FEATURES)), coef, 0.0)


def test_the_discriminator_term_changes_the_critics_choice():
    call = Call(notes([60, 62, 64, 65, 67, 65, 64, 62]), Meter())
    low = notes([60, 62, 64, 62, 60, 62, 64, 65], start=192)
    high = notes([72, 74, 76, 74, 72, 74, 76, 77], start=192)
    cands = [(low, -1.0), (high, -1.0)]
    weights = {"log_likelihood": 1.0, "realism": 1.0}
    up = choose(call, cands, 192, weights, discriminator=_toy_discriminator("mean_shift", 5.0), start=192)
    down = choose(call, cands, 192, weights, discriminator=_toy_discriminator("mean_shift", -5.0), start=192)
    assert (up.index, down.index) == (1, 0)
    assert up.terms["realism"] > 0 and "realism" in up.explain()["terms"]
    # the panel's line says why in words: what set the choice above the other
    assert "sounds most like a real continuation" in up.summary() and up.explain()["why"] == up.reasons()
    assert up.summary().startswith("#2/2: ")


def test_a_fitted_discriminator_tells_its_two_classes_apart():
    rng = np.random.default_rng(3)
    summary = CallSummary.of(notes([60, 62, 64, 65, 67, 65, 64, 62]), Meter())
    real, sampled = [], []
    for _ in range(60):  # real: moving lines; sampled: one pitch repeated
        p = 60 + int(rng.integers(0, 12))
        real.append(features(summary, notes([p, p + 2, p + 4, p + 2, p + 5, p + 7, p + 5, p + 4], 192), Meter(), 192, 192))
        sampled.append(features(summary, notes([p] * 7 + [p + 2], 192), Meter(), 192, 192))
    real, sampled = np.array(real), np.array(sampled)
    assert cross_validated(real, sampled) > 0.95
    d = fit(real, sampled)
    again = Discriminator.from_meta(json.loads(json.dumps(d.to_meta())))
    assert np.allclose(again.log_odds(real), d.log_odds(real), atol=1e-3)


@pytest.mark.parametrize("bad", [{"features": ["x"]}, {"features": list(FEATURES), "mean": [0] * 3},
                                 {"features": list(FEATURES), "mean": [float("nan")] * len(FEATURES),
                                  "scale": [1] * len(FEATURES), "coef": [0] * len(FEATURES), "bias": 0},
                                 {"features": list(FEATURES), "mean": [0] * len(FEATURES), "scale": [0] * len(FEATURES),
                                  "coef": [0] * len(FEATURES), "bias": 0}, "not a dict"])
def test_a_malformed_discriminator_is_refused(bad):
    with pytest.raises(ValueError):
        Discriminator.from_meta(bad)


def test_the_shipped_default_plays_with_its_own_discriminator_and_says_why():
    from antiphon.engine.fake_time import simulate
    from antiphon.engine.session import Session, SessionParams
    from antiphon.engine.style import load_style

    runtime = load_style("default").runtime()
    assert runtime.critic_discriminator is not None and runtime.critic_weights["realism"] > 0
    call = notes([67, 69, 71, 72, 74, 72, 71, 69, 67, 66, 67, 69])
    s = Session(runtime, Meter(), SessionParams(), seed=0)
    answer = [n for n in simulate(s, call, 12 * 24 + 3 * 96) if n.start >= 12 * 24]
    assert answer and s.last_choice is not None
    assert s.last_choice.terms["realism"] != 0.0
    assert ": " in s.last_choice.summary() and all(r in s.last_choice.summary() for r in s.last_choice.reasons())
