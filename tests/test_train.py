"""Training end to end on real chorales (a few JSB pieces): style file, checkpoints, --resume, a
corrupt checkpoint, eval against the Markov baseline, DDP with two gloo processes."""
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from antiphon.cli import main as antiphon
from antiphon.engine.style import load_style

JSB = Path(__file__).resolve().parents[2] / "shared" / "benchmarks" / "jsb" / "jsb-chorales-quarter.trainvalid.json"


def jsb_subset(tmp_path_factory, n_train: int, n_valid: int) -> str:
    """A `jsb-quarter:` spec of the first chorales of the benchmark's train and valid splits."""
    if not JSB.exists():
        pytest.skip(f"{JSB} not present")
    data = json.loads(JSB.read_text())
    path = tmp_path_factory.mktemp("jsb") / f"jsb-{n_train}-{n_valid}.json"
    path.write_text(json.dumps({"train": data["train"][:n_train], "valid": data["valid"][:n_valid]}))
    return f"jsb-quarter:{path}"


def live_step_log_probs(runtime, tokens, positions) -> list[float]:
    """The log-probability the realtime step gives each of tokens[1:], under the grammar mask."""
    import numpy as np
    import torch

    from antiphon.training.scoring import grammar_masks

    state = runtime.initial_state()
    masks = grammar_masks(tokens)
    got = []
    for i in range(len(tokens) - 1):
        logits = runtime.step(int(tokens[i]), int(positions[i]), state).astype(np.float64)
        logits[~masks[i]] = -np.inf
        got.append(torch.log_softmax(torch.from_numpy(logits), 0)[int(tokens[i + 1])].item())
    return got


@pytest.fixture(scope="module")
def jsb_small(tmp_path_factory):
    return jsb_subset(tmp_path_factory, 12, 4)


TINY = ["--embed", "16", "--hidden", "32", "--layers", "1", "--batch-size", "4", "--seq-len", "64", "--threads", "1"]


def test_train_writes_a_style_with_its_command_and_figures_then_resumes(jsb_small, tmp_path, capsys):
    out = tmp_path / "tiny.style"
    assert antiphon(["train", jsb_small, "--out", str(out), "--epochs", "1", *TINY]) == 0
    style = load_style(str(out))
    assert style.meta["command"].startswith("antiphon train")
    assert style.meta["data"] == [jsb_small]
    assert "nll_per_frame" in style.meta["held_out"]["valid"]
    assert (tmp_path / "tiny.style.ckpt").exists() and (tmp_path / "tiny.style.loss.png").exists()
    capsys.readouterr()
    assert antiphon(["train", jsb_small, "--out", str(out), "--epochs", "2", "--resume", *TINY]) == 0
    log = capsys.readouterr().out
    assert "resumed from" in log and '"epoch": 2' in log and '"epoch": 1' not in log


def test_a_corrupt_checkpoint_is_reported_not_loaded(jsb_small, tmp_path, capsys):
    out = tmp_path / "c.style"
    ckpt = tmp_path / "c.style.ckpt"
    ckpt.write_bytes(b"\x80\x04garbage")
    assert antiphon(["train", jsb_small, "--out", str(out), "--epochs", "1", "--resume", *TINY]) == 1
    assert "pickle" in capsys.readouterr().err
    ckpt.write_bytes(b"not a checkpoint at all")
    assert antiphon(["train", jsb_small, "--out", str(out), "--epochs", "1", "--resume", *TINY]) == 1


def test_eval_reports_per_frame_figures_and_the_markov_baseline(jsb_small, tmp_path, capsys):
    out = tmp_path / "e.style"
    antiphon(["train", jsb_small, "--out", str(out), "--epochs", "1", *TINY])
    capsys.readouterr()
    assert antiphon(["eval", "--style", str(out), "--data", jsb_small, "--split", "valid", "--json"]) == 0
    lstm = json.loads(capsys.readouterr().out)
    assert antiphon(["eval", "--baseline", "markov", "--data", jsb_small, "--split", "valid", "--json"]) == 0
    markov = json.loads(capsys.readouterr().out)
    data = json.loads(Path(jsb_small.split(":", 1)[1]).read_text())
    frames = sum(len(p) for p in data["valid"])
    for r in (lstm, markov):
        assert r["frames"] == frames and r["events"] > frames
        assert 0 < r["nll_per_event"] < 6 and 0 <= r["accuracy"] <= 1 and r["nll_per_frame"] > r["nll_per_event"]


def test_ddp_two_cpu_processes_on_gloo(jsb_small, tmp_path):
    out = tmp_path / "ddp.style"
    env = dict(os.environ, OMP_NUM_THREADS="1")
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc-per-node", "2", "--master-port", "29611",
           "-m", "antiphon", "train", jsb_small, "--out", str(out), "--epochs", "1", "--device", "cpu", *TINY]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=300, env=env,
                          cwd=Path(__file__).resolve().parents[1])
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert load_style(str(out)).meta["train_config"]["epochs"] == 1
    assert '"epoch": 1' in proc.stdout


def test_fine_tuning_starts_from_a_style_and_records_its_lineage(jsb_small, tmp_path):
    parent = tmp_path / "parent.style"
    assert antiphon(["train", jsb_small, "--out", str(parent), "--epochs", "1", *TINY]) == 0
    child = tmp_path / "child.style"
    assert antiphon(["train", jsb_small, "--out", str(child), "--epochs", "1", "--init", str(parent),
                     "--dropout", "0.0", *TINY[6:]]) == 0
    meta = load_style(str(child)).meta
    assert meta["init"]["name"] == "parent" and meta["model_config"]["hidden"] == 32
    assert meta["held_out"]["valid"]["nll_per_event"] < load_style(str(parent)).meta["held_out"]["valid"]["nll_per_event"]
    assert antiphon(["train", jsb_small, "--out", str(child), "--init", str(parent), "--hidden", "64", *TINY[6:]]) == 1


def test_masked_loss_with_the_sounding_input_and_transposition(jsb_small, tmp_path, capsys):
    out = tmp_path / "m.style"
    assert antiphon(["train", jsb_small, "--out", str(out), "--epochs", "2", "--masked-loss", "--sounding-input",
                     "--transpose", "3", *TINY]) == 0
    epochs = [json.loads(line) for line in capsys.readouterr().out.splitlines() if line.startswith('{"epoch"')]
    assert len(epochs) == 2 and all(0 < e["train_loss"] < 6 for e in epochs)
    assert epochs[1]["train_loss"] < epochs[0]["train_loss"]
    style = load_style(str(out))
    assert style.config.sounding_input and style.meta["train_config"]["masked_loss"]


def test_interval_head_trains_and_the_live_step_scores_a_chorale_as_eval_does(jsb_small, tmp_path, capsys):
    import numpy as np

    from antiphon.engine.runtime import StepRuntime
    from antiphon.training.data import load_data
    from antiphon.training.scoring import token_log_probs

    out = tmp_path / "i.style"
    assert antiphon(["train", jsb_small, "--out", str(out), "--epochs", "2", "--interval-head", "--interval-roles", "--sounding-input",
                     "--transpose", "2", *TINY]) == 0
    epochs = [json.loads(line) for line in capsys.readouterr().out.splitlines() if line.startswith('{"epoch"')]
    assert epochs[1]["train_loss"] < epochs[0]["train_loss"]
    style = load_style(str(out))
    assert style.config.interval_head and "interval_proj.weight" in style.model.state_dict()
    tokens, positions = load_data([jsb_small])["valid"].pieces[0]
    expected, _ = token_log_probs(style.model, tokens, positions, memory=style.memory)
    got = live_step_log_probs(StepRuntime(style.model, style.memory), tokens, positions)
    np.testing.assert_allclose(got, expected, atol=2e-4)


def test_ema_weights_are_the_ones_validated_saved_and_resumed(jsb_small, tmp_path, capsys):
    import torch

    from antiphon.engine.style import unpack

    out = tmp_path / "e.style"
    assert antiphon(["train", jsb_small, "--out", str(out), "--epochs", "2", "--ema", "0.9", "--no-calibrate", *TINY]) == 0
    ckpt = out.with_name(out.name + ".ckpt")
    tensors, meta = unpack(ckpt.read_bytes(), str(ckpt))
    assert meta["train_config"]["ema"] == 0.9
    style = load_style(str(out)).model.state_dict()
    ema = {k[4:]: v for k, v in tensors.items() if k.startswith("ema.")}
    raw = {k[6:]: v for k, v in tensors.items() if k.startswith("model.")}
    assert set(ema) == set(style) == set(raw)
    if meta["history"]["best_epoch"] == 2:
        assert all(torch.equal(style[k], ema[k]) for k in style)
    assert not all(torch.equal(ema[k], raw[k]) for k in raw)  # an average, not the last step's weights
    capsys.readouterr()
    assert antiphon(["train", jsb_small, "--out", str(out), "--epochs", "3", "--ema", "0.9", "--resume", *TINY]) == 0
    assert "resumed from" in capsys.readouterr().out
    tensors, meta = unpack(ckpt.read_bytes(), str(ckpt))
    assert meta["history"]["epoch"] == 3 and any(k.startswith("ema.") for k in tensors)


def test_a_session_memory_is_chosen_on_valid_and_eval_scores_with_it(tmp_path_factory, tmp_path, capsys):
    jsb = jsb_subset(tmp_path_factory, 12, 9)  # 3,234 valid events: enough to choose a memory on (3,000)
    out = tmp_path / "m.style"
    assert antiphon(["train", jsb, "--out", str(out), "--epochs", "1", *TINY]) == 0
    tuning = load_style(str(out)).meta["memory_tuning"]
    assert tuning["split_events"] == 3234
    assert tuning["nll_per_event"] <= tuning["nll_per_event_without"]
    # chorales whose every phrase comes back: the memory must be chosen, and must help
    data = json.loads(JSB.read_text())
    repeated = tmp_path / "repeated.json"
    repeated.write_text(json.dumps({"train": data["train"][:2], "valid": [p + p for p in data["valid"][:4]]}))
    spec = f"jsb-quarter:{repeated}"
    capsys.readouterr()
    assert antiphon(["tune-memory", "--style", str(out), "--data", spec]) == 0
    tuned = json.loads(capsys.readouterr().out)
    assert tuned["memory"] is not None and tuned["nll_per_event"] < tuned["nll_per_event_without"] - 0.05
    assert load_style(str(out)).memory.mix == tuned["memory"]["mix"]
    figures = {}
    for flag in ([], ["--no-memory"]):
        assert antiphon(["eval", "--style", str(out), "--data", spec, "--split", "valid", "--json", *flag]) == 0
        figures[bool(flag)] = json.loads(capsys.readouterr().out)
    assert figures[False]["memory"] == tuned["memory"] and figures[True]["memory"] is None
    assert abs(figures[False]["nll_per_event"] - tuned["nll_per_event"]) < 1e-4
    assert abs(figures[True]["nll_per_event"] - tuned["nll_per_event_without"]) < 1e-4


def test_each_batch_row_carries_the_transposition_it_was_given(jsb_small):
    import random

    import numpy as np

    from antiphon.engine.tokens import transpose_tokens
    from antiphon.training.data import load_data
    from antiphon.training.train import TrainConfig, batches, chunks

    pieces = load_data([jsb_small])["train"].pieces
    windows = chunks(pieces, 10_000)
    seen = set()
    for x, _, _, _, _, shift, _, _ in batches(windows, TrainConfig(batch_size=1, transpose=5), random.Random(3)):
        k = int(shift[0])
        seen.add(k)
        originals = [w[0][:-1] for w in windows if len(w[0]) - 1 == x.shape[1]]
        assert any(np.array_equal(x[0].numpy(), transpose_tokens(t, k) if k else t) for t in originals)
    assert len(seen) > 3 and all(-5 <= k <= 5 for k in seen)


def test_shift_input_trains_and_the_played_stream_reads_shift_zero(jsb_small, tmp_path, capsys):
    import torch

    out = tmp_path / "k.style"
    assert antiphon(["train", jsb_small, "--out", str(out), "--epochs", "2", "--sounding-input", "--shift-input",
                     "--transpose", "6", *TINY]) == 0
    style = load_style(str(out))
    assert style.config.shift_input
    x = torch.tensor([[0, 61, 65, 68, 290]])
    pos = torch.zeros_like(x)
    with torch.no_grad():
        played, _ = style.model(x, pos)
        zero, _ = style.model(x, pos, shift=torch.tensor([0]))
        moved, _ = style.model(x, pos, shift=torch.tensor([5]))
    assert torch.equal(played, zero) and not torch.allclose(played, moved)


def _two_part_scores(folder: Path, n: int) -> None:
    """n short two-part MusicXML pieces: a melody over a slower bass line."""
    import random

    from music21 import note, stream

    rng = random.Random(5)
    for i in range(n):
        score = stream.Score()
        for low, length in ((0, 0.5), (-12, 1.0)):
            part = stream.Part()
            for _ in range(int(16 / length)):
                part.append(note.Note(60 + low + rng.choice([0, 2, 4, 5, 7, 9, 11, 12]), quarterLength=length))
            score.insert(0, part)
        score.write("musicxml", fp=str(folder / f"duet{i}.musicxml"))


def test_role_input_learns_who_plays_from_pieces_of_several_parts(tmp_path, capsys, jsb_small):
    import torch

    from antiphon.engine.model import EventLSTM

    data = tmp_path / "duets"
    data.mkdir()
    _two_part_scores(data, 8)
    out = tmp_path / "r.style"
    assert antiphon(["train", str(data), "--out", str(out), "--epochs", "2", "--role-input", "--seed", "4",
                     "--no-memory", "--no-calibrate", "--cache", str(tmp_path / "cache"), *TINY]) == 0
    style = load_style(str(out))
    assert style.config.role_input
    trained = style.model.role_emb.weight.detach()
    torch.manual_seed(4)
    initial = EventLSTM(style.config).role_emb.weight.detach()
    assert not trained[0].any()  # nobody named adds nothing
    assert (trained[1:] - initial[1:]).abs().max() > 1e-3  # the player's and the band's rows were learnt
    assert style.runtime().role_table is not None
    capsys.readouterr()
    assert antiphon(["train", jsb_small, "--out", str(tmp_path / "j.style"), "--epochs", "1", "--role-input",
                     "--no-memory", "--no-calibrate", *TINY]) == 0
    assert "no training piece has several parts" in capsys.readouterr().err
