"""Fitting the critic on valid calls: the weights reach the style file and the session plays by them."""
import json

import numpy as np

from antiphon.cli import main as antiphon
from antiphon.engine.critic import DEFAULT_WEIGHTS, TERMS
from antiphon.engine.style import load_style
from antiphon.training.critic_fit import FitData, fit, objective


def test_fit_critic_writes_weights_the_session_then_uses(tmp_path, capsys):
    out = tmp_path / "fitted.style"
    rc = antiphon(["fit-critic", "--style", "default", "--calls", "fiddle", "--limit", "3", "--candidates", "4",
                   "--k", "4", "--out", str(out), "--json"])
    assert rc == 0
    result = json.loads(capsys.readouterr().out)
    style = load_style(str(out))
    assert style.meta["critic"]["weights"] == result["weights"]
    assert style.meta["critic"]["fit"]["valid_calls"] == 3 and style.meta["critic"]["fit"]["k"] == 4
    assert style.runtime().critic_weights == {t: float(result["weights"][t]) for t in TERMS}


def test_fit_moves_weights_towards_the_real_continuations():
    """Two candidates per call: the first always in key but far from the call's register, the second near
    it and off key; the real continuations are near and in key. The fit must find that register matters."""
    rng = np.random.default_rng(0)
    calls = 40
    terms, measures = [], []
    for _ in range(calls):
        t = np.zeros((2, len(TERMS)))
        t[:, TERMS.index("log_likelihood")] = [-0.5, -0.6]
        t[:, TERMS.index("key_fit")] = [1.0, 0.9]
        t[:, TERMS.index("register")] = [-1.0, -0.1]
        terms.append(t + rng.normal(0, 1e-3, t.shape))
        m = np.zeros((2, 8))
        m[:, 0] = [1.0, 0.9]  # key_fit
        m[:, 3] = [6.0, 1.0]  # register distance (both within the register rule)
        m[:, 7] = 1.0  # answered
        measures.append(m)
    real = np.tile([0.9, 0.5, 0.9, 2.0, 0.0, 0.5, 0.0, 1.0], (calls, 1))
    for m in measures:
        m[:, [1, 2, 5]] = 0.5, 0.9, 0.5
    data = FitData(terms, measures, real, ["set"] * calls)
    start = dict(DEFAULT_WEIGHTS, register=0.0, key_fit=1.0)
    before, _ = objective(data, np.array([start[t] for t in TERMS]))
    result = fit(data, start=start)
    assert result["objective"] > before
    assert result["chosen"]["register_distance"] < 2.0  # the near candidate, nearly every time (6 before)
    assert objective(data, np.array([start[t] for t in TERMS]))[1]["chosen"]["register_distance"] == 6.0
