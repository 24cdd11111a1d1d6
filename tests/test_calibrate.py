"""Calibration: a temperature chosen on valid and folded into the output layers, so that eval, the live
step and the style file all carry it; it is kept only where it helps."""
import json

import numpy as np
import pytest
import torch

from antiphon.cli import main as antiphon
from antiphon.engine.style import load_style
from tests.test_train import TINY, jsb_subset, live_step_log_probs


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    spec = jsb_subset(tmp_path_factory, 12, 4)
    out = tmp_path_factory.mktemp("cal") / "c.style"
    assert antiphon(["train", spec, "--out", str(out), "--epochs", "3", "--interval-head", "--sounding-input",
                     "--no-calibrate", "--no-memory", *TINY]) == 0
    return spec, out


def _valid(spec, style, capsys):
    capsys.readouterr()
    assert antiphon(["eval", "--style", str(style), "--data", spec, "--split", "valid", "--json"]) == 0
    return json.loads(capsys.readouterr().out)


def test_an_overconfident_style_is_cooled_and_scores_better(trained, tmp_path, capsys):
    from antiphon.engine.style import atomic_write_bytes, pack, unpack

    spec, path = trained
    hot = tmp_path / "hot.style"
    tensors, meta = unpack(path.read_bytes())
    for name in ("head.weight", "head.bias", "interval_proj.weight", "interval_proj.bias"):
        tensors[name] = tensors[name] * 1.5  # logits 1.5x too sharp
    atomic_write_bytes(hot, pack(tensors, meta))
    before = _valid(spec, hot, capsys)
    assert antiphon(["calibrate", "--style", str(hot), "--data", spec, "--no-memory"]) == 0
    report = json.loads(capsys.readouterr().out)
    t = report["calibration"]["temperature"]
    assert 1.2 < t < 2.0
    after = _valid(spec, hot, capsys)
    assert after["nll_per_event"] < before["nll_per_event"] - 0.01
    assert after["nll_per_event"] == pytest.approx(report["calibration"]["nll_per_event"], abs=1e-4)
    style = load_style(str(hot))
    assert style.meta["calibration"]["temperature"] == t
    torch.testing.assert_close(style.model.head.weight, tensors["head.weight"] / t)


def test_the_live_step_plays_the_calibrated_model(trained, tmp_path, capsys):
    from antiphon.training.data import load_data
    from antiphon.training.scoring import token_log_probs

    spec, path = trained
    mine = tmp_path / "m.style"
    mine.write_bytes(path.read_bytes())
    assert antiphon(["calibrate", "--style", str(mine), "--data", spec]) == 0
    style = load_style(str(mine))
    tokens, positions = load_data([spec])["valid"].pieces[0]
    expected, _ = token_log_probs(style.model, tokens, positions, memory=style.memory)
    got = live_step_log_probs(style.runtime(), tokens, positions)
    np.testing.assert_allclose(got, expected, atol=2e-4)
    assert _valid(spec, mine, capsys)["nll_per_event"] <= style.meta["calibration"]["nll_per_event_before"] + 1e-4
