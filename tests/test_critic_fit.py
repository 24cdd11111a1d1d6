"""Fitting the critic: the discriminator and the weights reach the style file and the session plays by them;
the weights make the chosen answers match the real continuations from either side."""
import json

import numpy as np

from antiphon.cli import main as antiphon
from antiphon.engine.critic import DEFAULT_WEIGHTS, TERMS
from antiphon.engine.style import load_style
from antiphon.training.critic_fit import DESCRIPTORS, FitData, chances, fit


def test_fit_critic_writes_a_discriminator_and_weights_the_session_then_uses(tmp_path, capsys):
    out = tmp_path / "fitted.style"
    rc = antiphon(["fit-critic", "--style", "default", "--calls", "bach", "--limit", "3", "--candidates", "4",
                   "--k", "4", "--train-calls", "4", "--out", str(out), "--json"])
    assert rc == 0
    result = json.loads(capsys.readouterr().out)
    style = load_style(str(out))
    critic = style.meta["critic"]
    assert critic["weights"] == result["weights"]
    assert critic["fit"]["valid_calls"] == 3 and critic["fit"]["k"] == 4
    assert critic["discriminator"]["fit"]["real"] == 4 and result["discriminator"]["sets"] == ["bach"]
    runtime = style.runtime()
    assert runtime.critic_weights == {t: float(result["weights"][t]) for t in TERMS}
    assert runtime.critic_discriminator is not None
    assert critic["choice"] == "sample" and runtime.critic_choice == "sample"
    assert critic["discriminator"]["fit"]["tilted_on"] == "valid" and result["weights"]["realism"] == 1.0
    assert load_style("default").meta.get("critic", {}).get("fit", {}).get("valid_calls") != 3  # --out: untouched
    again = tmp_path / "refitted.style"  # the weights alone, keeping the style's discriminator, into a new file
    assert antiphon(["fit-critic", "--style", str(out), "--calls", "bach", "--limit", "2", "--candidates", "4",
                     "--k", "4", "--train-calls", "0", "--out", str(again), "--json"]) == 0
    capsys.readouterr()
    assert load_style(str(again)).meta["critic"]["fit"]["valid_calls"] == 2
    assert load_style(str(out)).meta["critic"]["fit"]["valid_calls"] == 3


def _register_data(real_register: float, calls: int = 40) -> FitData:
    """Three candidates per call: far from the call's register, middling, and nearest it (the least likely);
    the real continuations' register is `real_register` on average."""
    rng = np.random.default_rng(0)
    reg = TERMS.index("register")
    terms, described, rules = [], [], []
    for _ in range(calls):
        t = np.zeros((3, len(TERMS)))
        t[:, TERMS.index("log_likelihood")] = [-0.6, -0.5, -1.0]
        t[:, reg] = [-1.0, -0.4, -0.05]
        t = t + rng.normal(0, 1e-3, t.shape)
        terms.append(t)
        d = np.zeros((3, len(DESCRIPTORS)))
        d[:, DESCRIPTORS.index("register")] = t[:, reg]
        described.append(d)
        rules.append(np.ones((3, 4), dtype=bool))
    real = np.zeros((calls, len(DESCRIPTORS)))
    real[:, DESCRIPTORS.index("register")] = real_register + rng.normal(0, 0.1, calls)
    return FitData(terms, described, rules, real, ["set"] * calls)


def _played_register(data: FitData, result: dict) -> float:
    w = np.array([result["weights"][t] for t in TERMS])
    reg = TERMS.index("register")
    return float(np.mean([p @ t[:, reg] for p, t in zip(chances(data, w), data.terms)]))


def test_the_tilt_plays_the_real_register_from_either_side():
    """Unweighted, the critic plays -0.48 octaves from the call on average. Where the real continuations
    stay nearer (-0.3) the fit leans towards the call; where they go further (-0.7), away from it; either way
    the played answers' mean lands on the real one."""
    for real, sign in ((-0.3, 1), (-0.7, -1)):
        data = _register_data(real)
        result = fit(data)
        assert result["choice"] == "sample"
        assert np.sign(result["weights"]["register"]) == sign
        assert abs(_played_register(data, result) - np.mean(data.real[:, DESCRIPTORS.index("register")])) < 0.02
        assert result["objective"] > result["objective_at_start"]
        assert result["weights"]["log_likelihood"] == 0.0 and result["weights"]["silent"] == 10.0


def test_sampled_choice_draws_each_candidate_as_often_as_its_chance():
    from antiphon.engine.critic import Call, choose
    from antiphon.engine.events import Meter, Note

    meter = Meter()
    call = Call([Note(i * 24, i * 24 + 24, 60 + i, 80) for i in range(8)], meter)
    candidates = [([Note(192 + i * 24, 216 + i * 24, p, 80) for i in range(8)], -1.0) for p in (60, 67, 84)]
    weights = dict.fromkeys(TERMS, 0.0) | {"register": 2.0}
    rng = np.random.default_rng(1)
    picks = [choose(call, candidates, 192, weights, choice="sample", rng=rng) for _ in range(3000)]
    scores = np.array(picks[0].scores)
    expected = np.exp(scores - scores.max()) / np.exp(scores - scores.max()).sum()
    seen = np.bincount([c.index for c in picks], minlength=3) / len(picks)
    assert np.abs(seen - expected).max() < 0.03 and expected.max() < 0.9
    assert {round(c.chance, 6) for c in picks if c.index == 0} == {round(expected[0], 6)}
    assert choose(call, candidates, 192, weights, choice="best").index == int(np.argmax(scores))
    assert "chance" in picks[0].summary()
