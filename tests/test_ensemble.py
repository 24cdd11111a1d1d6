"""Ensemble styles: the realtime step mixes its members as eval scores them; `antiphon ensemble` fits the
weights on valid and the mixture scores at least as well there as its best member; a session answers
with one; hostile ensemble metadata is refused."""
import json

import numpy as np
import pytest
import torch

from antiphon_cli import main as antiphon
from engine.ensemble import EnsembleRuntime, Member, fit_weights
from engine.memory import MemoryConfig
from engine.model import EventLSTM, ModelConfig
from engine.style import StyleError, load_style, pack, save_ensemble, unpack
from tests.test_train import TINY, jsb_subset, live_step_log_probs


def _members():
    torch.manual_seed(0)
    a = EventLSTM(ModelConfig(embed=24, hidden=32, layers=2, sounding_input=True, interval_head=True,
                              interval_roles=True)).eval()
    b = EventLSTM(ModelConfig(embed=16, hidden=24, layers=1)).eval()
    return [Member(a, MemoryConfig(16.0, 0.3, 4.0, 64), 0.7), Member(b, None, 0.3)]


def test_the_realtime_step_equals_offline_scoring_through_the_memory_window(tmp_path_factory, tmp_path):
    from training.data import load_data
    from training.scoring import style_token_log_probs

    members = _members()
    path = tmp_path / "e.style"
    save_ensemble(path, members, {"name": "e"}, [{}, {}])
    style = load_style(str(path))
    assert style.is_ensemble and [m.weight for m in style.members] == [0.7, 0.3]
    spec = jsb_subset(tmp_path_factory, 0, 1)
    tokens, positions = load_data([spec])["valid"].pieces[0]
    assert len(tokens) > 64 + 10  # the memory's window fills and slides
    expected, _ = style_token_log_probs(style, tokens, positions)
    runtime = style.runtime()
    assert isinstance(runtime, EnsembleRuntime)
    got = live_step_log_probs(runtime, tokens, positions)
    np.testing.assert_allclose(got, expected, atol=2e-4)


def test_checkpoints_restore_every_member():
    runtime = EnsembleRuntime(_members())
    state = runtime.initial_state()
    for tok in (0, 61, 65, 268):
        runtime.step(tok, 0, state)
    saved = state.checkpoint()
    after = runtime.step(70, 0, state).copy()
    runtime.step(80, 0, state)
    state.copy_from(saved)
    np.testing.assert_allclose(runtime.step(70, 0, state), after, atol=1e-6)


def test_em_weights_favour_the_member_that_explains_the_data():
    rng = np.random.default_rng(0)
    good = np.log(rng.uniform(0.5, 0.9, 2000))
    bad = np.log(rng.uniform(0.01, 0.2, 2000))
    w = fit_weights([bad, good])
    assert abs(sum(w) - 1) < 1e-9 and w[1] > 0.9


def test_antiphon_ensemble_fits_weights_on_valid_and_beats_its_members_there(tmp_path_factory, tmp_path, capsys):
    spec = jsb_subset(tmp_path_factory, 12, 4)
    paths = []
    for seed in (0, 1):
        out = tmp_path / f"s{seed}.style"
        assert antiphon(["train", spec, "--out", str(out), "--epochs", "2", "--seed", str(seed), "--no-memory",
                         *TINY]) == 0
        paths.append(str(out))
    capsys.readouterr()
    ens = tmp_path / "ens.style"
    assert antiphon(["ensemble", *paths, "--data", spec, "--out", str(ens)]) == 0
    report = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert abs(sum(report["weights"]) - 1) < 1e-3 and all(w >= 0 for w in report["weights"])
    members = []
    for p in paths:
        assert antiphon(["eval", "--style", p, "--data", spec, "--split", "valid", "--json"]) == 0
        members.append(json.loads(capsys.readouterr().out)["nll_per_frame"])
    assert antiphon(["eval", "--style", str(ens), "--data", spec, "--split", "valid", "--json"]) == 0
    mixed = json.loads(capsys.readouterr().out)
    assert mixed["frames"] == report["valid"]["frames"]
    assert mixed["nll_per_frame"] == pytest.approx(report["valid"]["nll_per_frame"], abs=1e-4)
    assert mixed["nll_per_frame"] <= min(members) + 1e-3
    style = load_style(str(ens))
    assert [m["source"] for m in style.meta["members"]] == paths
    assert all("train" in m["command"] for m in style.meta["members"])


def test_a_session_answers_with_an_ensemble_style(tmp_path, capsys):
    path = tmp_path / "e.style"
    save_ensemble(path, _members(), {"name": "e"}, [{}, {}])
    out = tmp_path / "demo.mid"
    assert antiphon(["demo", "--style", str(path), "--out", str(out), "--png", str(tmp_path / "d.png"),
                     "--json"]) == 0
    import mido

    mid = mido.MidiFile(str(out))
    answer = [m for m in mid.tracks[-1] if m.type == "note_on" and m.velocity > 0]
    assert answer


@pytest.mark.parametrize("case", ["one member", "nine members", "weight 0", "weight a string", "member not an object",
                                  "member config of another size", "member memory hostile"])
def test_hostile_ensemble_metadata_is_refused(tmp_path, case):
    path = tmp_path / "e.style"
    save_ensemble(path, _members(), {"name": "e"}, [{}, {}])
    tensors, meta = unpack(path.read_bytes())
    members = meta["members"]
    edit = {
        "one member": lambda: members[:1],
        "nine members": lambda: (members * 5)[:9],
        "weight 0": lambda: [dict(members[0], weight=0), members[1]],
        "weight a string": lambda: [dict(members[0], weight="0.5"), members[1]],
        "member not an object": lambda: [members[0], "os.system"],
        "member config of another size": lambda: [members[0], dict(members[1], model_config=dict(
            members[1]["model_config"], hidden=6000))],
        "member memory hostile": lambda: [dict(members[0], memory={"theta": 8, "mix": 0.1, "code": 1}), members[1]],
    }[case]
    path.write_bytes(pack(tensors, dict(meta, members=edit())))
    with pytest.raises(StyleError):
        load_style(str(path))
