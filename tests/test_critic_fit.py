"""Fitting the critic: the discriminator and the weights reach the style file and the session plays by them;
the weights make the chosen answers match the real continuations from either side."""
import json

import numpy as np

from antiphon.cli import main as antiphon
from antiphon.engine.critic import DEFAULT_WEIGHTS, TERMS
from antiphon.engine.style import load_style
from antiphon.training.critic_fit import DESCRIPTORS, FitData, fit, objective


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
    assert load_style("default").meta.get("critic", {}).get("fit", {}).get("valid_calls") != 3  # --out: untouched


def test_fit_matches_the_real_continuations_instead_of_staying_nearest_the_call():
    """Three candidates per call: far from the call's register, as far as the real continuations go, and
    nearest it (the least likely). A critic that rewards nearness picks the last; the fit must pick the middle."""
    rng = np.random.default_rng(0)
    calls = 40
    reg = TERMS.index("register")
    terms, described, rules = [], [], []
    for _ in range(calls):
        t = np.zeros((3, len(TERMS)))
        t[:, TERMS.index("log_likelihood")] = [-0.6, -0.5, -1.0]
        t[:, reg] = [-1.0, -0.4, -0.05]
        terms.append(t + rng.normal(0, 1e-4, t.shape))
        d = np.zeros((3, len(DESCRIPTORS)))
        d[:, DESCRIPTORS.index("register")] = t[:, reg]
        described.append(d)
        rules.append(np.ones((3, 4), dtype=bool))
    real = np.zeros((calls, len(DESCRIPTORS)))
    real[:, DESCRIPTORS.index("register")] = -0.4 + rng.normal(0, 0.1, calls)
    data = FitData(terms, described, rules, real, ["set"] * calls)
    start = dict(DEFAULT_WEIGHTS, register=4.0)
    before, _ = objective(data, np.array([start[t] for t in TERMS]))
    result = fit(data, start=start)
    assert result["objective"] > before
    w = np.array([result["weights"][t] for t in TERMS])
    picks = [int(np.argmax(t @ w)) for t in terms]
    assert picks.count(1) == calls  # the middle one, every time
