"""Ensemble styles: the realtime step mixes its members as eval scores them; `antiphon ensemble` fits the
weights on valid and the mixture scores at least as well there as its best member; transposed views of a
model hear the stream moved and play as eval scores them; a session answers with one; hostile ensemble
metadata is refused."""
import json

import numpy as np
import pytest
import torch

from antiphon.cli import main as antiphon
from antiphon.engine.ensemble import EnsembleRuntime, Member, Transposition, fit_weights
from antiphon.engine.memory import MemoryConfig
from antiphon.engine.events import Note
from antiphon.engine.model import EventLSTM, ModelConfig
from antiphon.engine.runtime import StepRuntime
from antiphon.engine.tokens import NOTE_OFF, NOTE_ON, encode_notes, transpose_tokens
from antiphon.engine.style import StyleError, load_style, pack, save_ensemble, unpack
from tests.test_train import TINY, jsb_subset, live_step_log_probs


def _members():
    torch.manual_seed(0)
    a = EventLSTM(ModelConfig(embed=24, hidden=32, layers=2, sounding_input=True, interval_head=True,
                              interval_roles=True)).eval()
    b = EventLSTM(ModelConfig(embed=16, hidden=24, layers=1)).eval()
    return [Member(a, MemoryConfig(16.0, 0.3, 4.0, 64), 0.7), Member(b, None, 0.3)]


def test_the_realtime_step_equals_offline_scoring_through_the_memory_window(tmp_path_factory, tmp_path):
    from antiphon.training.data import load_data
    from antiphon.training.scoring import style_token_log_probs

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


def _views():
    a, b = _members()
    return [Member(a.model, a.memory, 0.3, 0), Member(a.model, a.memory, 0.25, -1),
            Member(a.model, a.memory, 0.2, 2), Member(b.model, None, 0.25, 1)]


def _edge_piece():
    """Chords that reach both ends of the keyboard: transposed views must fold or drop those pitches."""
    notes = [Note(p, 80, 24 * i, 24 * i + 20) for i in range(6) for p in (0, 1, 60 + i, 126, 127)]
    return encode_notes(notes)


def test_a_transposed_view_hears_the_stream_moved_and_answers_back_in_the_played_key():
    model = _members()[0].model
    view = EnsembleRuntime([Member(model, None, 0.5, 3), Member(model, None, 0.5, 3)])
    plain = StepRuntime(model)
    notes = [Note(p, 80, 12 * i, 12 * i + 10) for i, p in enumerate((60, 64, 67, 72, 71, 67, 124))]
    tokens, positions = encode_notes(notes)
    moved = transpose_tokens(tokens, 3)
    vs, ps = view.initial_state(), plain.initial_state()
    for tok, up, pos in zip(tokens, moved, positions):
        got = view.step(int(tok), int(pos), vs).astype(np.float64)
        want = torch.log_softmax(torch.from_numpy(plain.step(int(up), int(pos), ps).astype(np.float64)), 0).numpy()
        # the view's pitches 0-2 are no played pitch moved up by 3: their share is left out
        lost = np.exp(np.r_[want[NOTE_ON:NOTE_ON + 3], want[NOTE_OFF:NOTE_OFF + 3]]).sum()
        want = want - np.log1p(-lost)
        for base in (NOTE_ON, NOTE_OFF):
            np.testing.assert_allclose(got[base:base + 125], want[base + 3:base + 128], atol=1e-4)
            assert np.all(got[base + 125:base + 128] == -np.inf)  # 125 + 3 is past the keyboard
        np.testing.assert_allclose(got[NOTE_OFF + 128:], want[NOTE_OFF + 128:], atol=1e-4)  # shifts, velocities


def test_transposition_folds_what_leaves_the_keyboard_by_an_octave():
    t = Transposition(2)
    assert t.pitch_map[60] == 62 and t.pitch_map[127] == 117 and t.pitch_map[125] == 127
    assert list(t.unreachable) == [NOTE_ON + 126, NOTE_ON + 127, NOTE_OFF + 126, NOTE_OFF + 127]
    assert np.flatnonzero(t.hear(np.isin(np.arange(128), [0, 60, 127]))).tolist() == [2, 62, 117]
    for bad in (13, -13, 1.5, True, "1"):
        with pytest.raises(ValueError):
            Transposition(bad)


@pytest.mark.parametrize("piece", ["chorale", "keyboard edges"])
def test_views_play_as_eval_scores_them_and_share_their_model_in_the_file(tmp_path_factory, tmp_path, piece):
    from antiphon.training.data import load_data
    from antiphon.training.scoring import style_token_log_probs

    path = tmp_path / "v.style"
    save_ensemble(path, _views(), {"name": "v", "mixture": {"temperature": 0.9}}, [{}, {}])
    tensors, meta = unpack(path.read_bytes())
    assert {k.split(".")[0] for k in tensors} == {"m0", "m1"}  # one copy of each model's weights
    assert [v["shift"] for v in meta["members"][0]["views"]] == [0, -1, 2]
    assert meta["members"][1]["views"] == [{"shift": 1, "weight": 0.25}]
    assert b'"version":"2"' in path.read_bytes()[:4096]  # an Antiphon that knows no views refuses it by version
    style = load_style(str(path))
    assert [(m.shift, m.weight) for m in style.members] == [(0, 0.3), (-1, 0.25), (2, 0.2), (1, 0.25)]
    assert style.members[0].model is style.members[2].model is not style.members[3].model
    assert style.mixture_temperature == 0.9
    if piece == "chorale":
        tokens, positions = load_data([jsb_subset(tmp_path_factory, 0, 1)])["valid"].pieces[0]
    else:
        tokens, positions = _edge_piece()
    expected, _ = style_token_log_probs(style, tokens, positions)
    assert np.isfinite(expected).all()
    got = live_step_log_probs(style.runtime(), tokens, positions)
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
    # the ensemble again, each model also heard a semitone down and up: an ensemble given as input adds its models
    views = tmp_path / "views.style"
    assert antiphon(["ensemble", str(ens), "--views", "1", "--data", spec, "--out", str(views)]) == 0
    report = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert set(report["shifts"]) <= {-1, 0, 1} and 2 < len(report["shifts"]) <= 6
    style = load_style(str(views))
    assert len({id(m.model) for m in style.members}) == 2
    assert [m["source"] for m in style.meta["members"]] == paths  # where each model came from, kept
    mixture = style.meta["mixture"]
    assert style.mixture_temperature == mixture["temperature"]
    assert mixture["nll_per_event"] <= mixture["nll_per_event_before"]
    assert report["valid"]["nll_per_event"] == pytest.approx(mixture["nll_per_event"], abs=1e-4)
    assert report["valid"]["nll_per_frame"] <= mixed["nll_per_frame"] + 1e-3
    # a lighter one: the three members (of those six views) that mix best on valid, one unshifted at least
    light = tmp_path / "light.style"
    assert antiphon(["ensemble", str(ens), "--views", "1", "--max-members", "3", "--data", spec,
                     "--out", str(light)]) == 0
    report = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert len(report["shifts"]) == 3 and 0 in report["shifts"]
    style = load_style(str(light))
    assert len(style.members) == 3 and len(style.meta["members"]) == len({id(m.model) for m in style.members})
    assert report["valid"]["nll_per_frame"] <= min(members) + 1e-3


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
                                  "member config of another size", "member memory hostile", "shift 13",
                                  "shift a float", "one shift twice", "views not a list", "33 views",
                                  "a view without a weight", "mixture temperature 0", "mixture temperature a string"])
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
        "shift 13": lambda: [dict(members[0], views=[{"shift": 13, "weight": 0.5}]), members[1]],
        "shift a float": lambda: [dict(members[0], views=[{"shift": 1.0, "weight": 0.5}]), members[1]],
        "one shift twice": lambda: [dict(members[0], views=[{"shift": 1, "weight": 0.2}] * 2), members[1]],
        "views not a list": lambda: [dict(members[0], views="0,1"), members[1]],
        "33 views": lambda: [dict(members[0], views=[{"shift": k, "weight": 0.01} for k in range(-12, 13)]),
                             dict(members[1], views=[{"shift": k, "weight": 0.01} for k in range(8)])],
        "a view without a weight": lambda: [dict(members[0], views=[{"shift": 1}]), members[1]],
    }.get(case)
    if case.startswith("mixture"):
        path.write_bytes(pack(tensors, dict(meta, mixture={"temperature": 0 if case.endswith("0") else "0.9"})))
    else:
        path.write_bytes(pack(tensors, dict(meta, members=edit())))
    with pytest.raises(StyleError):
        load_style(str(path))
