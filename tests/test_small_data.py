"""Small data: the small-data rule of the splits (a big corpus keeps its hash split exactly), the warnings,
no session memory tuned on a few hundred events, and a 25-file folder through the README's own
"Training your own style" commands, word for word, as a new user runs them."""
from __future__ import annotations

import json
import os
import shlex
import subprocess
import sys
from pathlib import Path

import pytest

from antiphon.training.splits import (MIN_PIECES_TO_HOLD_OUT, SMALL_SPLIT_EVENTS, SPLITS, assign_split,
                                      piece_key, small_data_splits, split_fraction)

ROOT = Path(__file__).resolve().parent.parent
EXE = Path(sys.executable).with_name("antiphon")


def test_the_hash_split_of_a_big_corpus_is_kept_exactly():
    from antiphon.training.sources import _expand

    for spec in ("corpus:bach", "corpus:folk"):
        keys = [t.key for t in _expand(spec, [], None)]
        splits = [assign_split(k) for k in keys]
        assert all(s in splits for s in SPLITS)
        assert small_data_splits(keys, splits) == (splits, None), spec


def test_ten_or_more_pieces_get_one_piece_in_each_empty_held_out_split():
    keys = [f"song{i}.mid" for i in range(400)]
    train_only = [k for k in keys if assign_split(k) == "train"][:25]
    splits, line = small_data_splits(train_only, ["train"] * 25)
    assert (splits.count("train"), splits.count("valid"), splits.count("test")) == (23, 1, 1)
    lowest = sorted(train_only, key=split_fraction)
    assert splits[train_only.index(lowest[0])] == "test" and splits[train_only.index(lowest[1])] == "valid"
    assert "small-data rule" in line and "23 train, 1 valid, 1 test" in line
    # a split the hash did fill keeps its pieces: only the empty one takes a piece
    one_valid = train_only[:24] + [next(k for k in keys if assign_split(k) == "valid")]
    splits, _ = small_data_splits(one_valid, [assign_split(k) for k in one_valid])
    assert (splits.count("train"), splits.count("valid"), splits.count("test")) == (23, 1, 1)
    assert splits[-1] == "valid"


def test_fewer_than_ten_pieces_all_train():
    keys = [f"song{i}.mid" for i in range(200)]
    few = [next(k for k in keys if assign_split(k) == "test")] + [k for k in keys if assign_split(k) == "train"][:4]
    splits, line = small_data_splits(few, [assign_split(k) for k in few])
    assert splits == ["train"] * 5 and f"need {MIN_PIECES_TO_HOLD_OUT} or more" in line


@pytest.fixture(scope="module")
def band(tmp_path_factory):
    """25 Bach chorales written as MIDI files, chosen so that the hash split alone holds none out."""
    from music21 import corpus

    folder = tmp_path_factory.mktemp("my-band")
    paths = sorted(str(p) for p in corpus.getComposer("bach") if Path(str(p)).name.startswith("bwv"))
    chosen = [p for p in paths if assign_split(piece_key(folder / (Path(p).stem + ".mid"))) == "train"][:26]
    for p in chosen[:25]:
        corpus.parse(p).write("midi", fp=str(folder / (Path(p).stem + ".mid")))
    idea = tmp_path_factory.mktemp("idea") / "idea.mid"
    corpus.parse(chosen[25]).write("midi", fp=str(idea))
    return folder, idea


def readme_training_commands() -> list[str]:
    """The command lines of the first bash block under "## Training your own style" in the README."""
    text = (ROOT / "README.md").read_text()
    section = text.split("## Training your own style", 1)[1]
    block = section.split("```bash", 1)[1].split("```", 1)[0]
    return [ln.strip() for ln in block.strip().splitlines() if ln.strip().startswith("antiphon ")]


@pytest.mark.slow
def test_a_25_file_folder_goes_through_the_readme_commands_word_for_word(band, tmp_path):
    """The README's training recipe as a new user runs it: the plain train line sizes the run to 25 files
    (fine-tuning the default style), ends with a report in words, and the style beats the Markov baseline."""
    folder, idea = band
    lines = readme_training_commands()
    assert [ln.split()[1] for ln in lines] == ["prepare", "train", "eval", "generate", "live"]
    env = {k: v for k, v in os.environ.items() if k not in ("ANTIPHON_CACHE", "ANTIPHON_DEBUG")}
    env["XDG_CONFIG_HOME"] = str(tmp_path / "config")
    outputs = {}
    for line in lines[:-1]:  # `antiphon live` needs a MIDI backend: the headless test runs it
        words = shlex.split(line, comments=True)
        assert "~/midi/my-band" in words or "idea.mid" in words or words[1] == "prepare"
        args = [str(folder) if w == "~/midi/my-band" else str(idea) if w == "idea.mid" else w for w in words[1:]]
        r = subprocess.run([str(EXE), *args], capture_output=True, text=True, timeout=600, cwd=tmp_path, env=env,
                           stdin=subprocess.DEVNULL)
        assert r.returncode == 0 and "Traceback" not in r.stderr, f"{line}\n{r.stdout}\n{r.stderr}"
        outputs.setdefault(args[0], []).append(r)
    prepared = outputs["prepare"][0]
    assert "prepared 25 pieces" in prepared.stdout
    assert "small-data rule" in prepared.stderr and "23 train, 1 valid, 1 test" in prepared.stderr
    train = outputs["train"][0]
    assert "auto: 23 pieces" in train.stderr and "fine-tuning the default style" in train.stderr, train.stderr
    assert "session memory not tuned" in train.stderr and f"fewer than {SMALL_SPLIT_EVENTS}" in train.stderr
    report = train.stdout.strip().splitlines()[-6:]
    print("\n" + "\n".join(report))
    assert report[0].startswith("How good mine.style is, on the test split")
    assert "(lower is better); the Markov baseline" in report[1] and "notes in key" in report[2]
    assert report[4] == "verdict: better than the baseline: ready to play", report
    assert report[5] == "next: antiphon live --style mine.style"
    from antiphon.engine.style import load_style

    style = load_style(str(tmp_path / "mine.style"))
    assert style.meta["init"]["style"] == "default" and style.meta["held_out"]["test"]["events"] > 0
    assert outputs["eval"][0].stdout.splitlines()[:2] == report[:2]  # eval reads the same figures
    assert (tmp_path / "more.mid").is_file()
    assert "3 variation(s) of 8 bars" in outputs["generate"][0].stdout
    assert "one after another" in outputs["generate"][0].stdout


def test_auto_sizes_the_run_to_the_data():
    from antiphon.training.run_plan import FINE_TUNE_BELOW, TARGET_STEPS, plan

    small, large = plan(7_000), plan(FINE_TUNE_BELOW * 3)
    assert small.init == "default" and large.init is None and plan(7_000, "scratch").init is None
    assert plan(7_000, "mine.style").init == "mine.style"
    for run, events in ((small, 7_000), (large, FINE_TUNE_BELOW * 3)):
        steps = run.epochs * -(-(-(-events // run.seq_len)) // run.batch_size)
        assert TARGET_STEPS <= steps < 2 * TARGET_STEPS or run.epochs == 3, (run, steps)
    assert small.lr < large.lr and large.preset == "medium" and small.patience > 0


def test_fewer_than_a_few_thousand_valid_events_tune_no_memory(tmp_path):
    import torch

    from antiphon.engine.model import PRESETS, EventLSTM
    from antiphon.engine.style import load_style, save_style
    from antiphon.training.data import Split
    from antiphon.training.memory_tune import tune_memory

    torch.manual_seed(0)
    path = tmp_path / "t.style"
    save_style(path, EventLSTM(PRESETS["tiny"]), {"name": "t"})
    before = path.read_bytes()
    import numpy as np

    tokens = np.zeros(SMALL_SPLIT_EVENTS // 2, dtype=np.int16)
    result = tune_memory(path, Split(pieces=[(tokens, np.zeros_like(tokens, dtype=np.uint8))]))
    assert "skipped" in result and f"fewer than {SMALL_SPLIT_EVENTS}" in result["skipped"]
    assert path.read_bytes() == before and load_style(str(path)).memory is None


def test_held_out_calls_of_a_small_folder_come_from_the_splits_train_gave_it(band):
    """fit-critic and bench --answers read a folder's valid and test pieces as train split it: with the
    small-data rule, one each of the 25, where the hash alone holds none out."""
    from antiphon.training.calls import held_out_calls
    from antiphon.training.sources import load_pieces

    folder, _ = band
    counts = {s: len(load_pieces([str(folder)], jobs=1, split=s)[0]) for s in ("train", "valid", "test")}
    assert counts == {"train": 23, "valid": 1, "test": 1}
    assert held_out_calls(str(folder), "valid") and held_out_calls(str(folder), "test")
