"""The prepared cache and `antiphon prepare`: arrays per split, manifest, atomic writes, reuse, CLI JSON."""
from __future__ import annotations

import io
import json
import os
from contextlib import redirect_stdout
from pathlib import Path

import numpy as np
import pytest

from antiphon import cli as antiphon_cli
from antiphon.engine.events import Note
from antiphon.engine.tokens import BOS, VOCABULARY, bin_velocity, clean_notes, decode_tokens, encode_notes, velocity_bin
from antiphon.training import dataset
from antiphon.training.dataset import load_split, load_split_arrays, prepare, prepare_or_load, read_manifest
from antiphon.training.sources import load_pieces

from .test_sources import JSB, MELODY, chorale_midi, mixed_folder, write_midi  # noqa: F401 (fixtures)


def test_prepare_folder_keeps_good_lists_broken_and_round_trips(mixed_folder, tmp_path):
    root, good, bad = mixed_folder
    out = tmp_path / "prepared"
    summary = prepare([str(root)], out, jobs=1)
    assert summary["files"] == len(good)
    assert {Path(s["path"]).name for s in summary["skipped"]} == bad
    assert all(s["reason"] for s in summary["skipped"])

    manifest = read_manifest(out)
    assert manifest["vocabulary"] == json.loads(json.dumps(VOCABULARY))
    assert manifest["specs"] == [str(root)] and manifest["skipped"] == summary["skipped"]
    assert sorted(os.listdir(out)) == ["manifest.json", "test.npz", "train.npz", "valid.npz"]  # no temp files

    pieces, _ = load_pieces([str(root)], jobs=1)
    by_key = {p.key: p for p in pieces}
    total_events = 0
    for split in ("train", "valid", "test"):
        arrays = load_split_arrays(out, split)
        assert arrays["tokens"].dtype == np.int16 and arrays["positions"].dtype == np.uint8
        assert arrays["offsets"].dtype == np.int64 and arrays["offsets"][0] == 0
        assert arrays["offsets"][-1] == len(arrays["tokens"]) == len(arrays["positions"])
        seqs = load_split(out, split)
        assert len(seqs) == len(arrays["keys"]) == manifest["splits"][split]["pieces"]
        for (tokens, positions), key, meter in zip(seqs, arrays["keys"], arrays["meters"]):
            piece = by_key[str(key)]
            assert piece.split == split and str(piece.meter) == str(meter)
            assert tokens[0] == BOS and (tokens[1:] != BOS).all()
            want_t, want_p = encode_notes(piece.notes, piece.meter)
            np.testing.assert_array_equal(tokens, want_t)
            np.testing.assert_array_equal(positions, want_p)
            binned = [Note(n.start, n.end, n.pitch, bin_velocity(velocity_bin(n.velocity))) for n in clean_notes(piece.notes)]
            assert decode_tokens(tokens, piece.meter) == binned  # velocities come back as their bin's
            total_events += len(tokens) - 1
    assert summary["events"] == manifest["events"] == total_events


def test_cli_json_is_exactly_the_contract(mixed_folder, tmp_path):
    root, good, bad = mixed_folder
    buf = io.StringIO()
    with redirect_stdout(buf):
        rc = antiphon_cli.main(["prepare", str(root), "--out", str(tmp_path / "p"), "--json", "--jobs", "1"])
    assert rc == 0
    result = json.loads(buf.getvalue())
    assert set(result) == {"files", "events", "seconds", "skipped"}
    assert result["files"] == len(good) and result["events"] > 0 and result["seconds"] >= 0
    assert {Path(s["path"]).name for s in result["skipped"]} == bad
    assert all(set(s) == {"path", "reason"} for s in result["skipped"])


def test_cli_human_summary(mixed_folder, tmp_path):
    root, _, _ = mixed_folder
    buf = io.StringIO()
    with redirect_stdout(buf):
        assert antiphon_cli.main(["prepare", str(root), "--out", str(tmp_path / "p"), "--jobs", "1"]) == 0
    text = buf.getvalue()
    assert "prepared 3 pieces" in text and "skipped 5" in text and "truncated.mid" in text


def test_prepare_or_load_reuses_the_cache_and_notices_changes(tmp_path, monkeypatch):
    data = tmp_path / "data"
    data.mkdir()
    write_midi(data / "one.mid", MELODY)
    out1, m1 = prepare_or_load([str(data)], tmp_path / "cache", jobs=1)
    assert m1["files"] == 1 and out1.parent == tmp_path / "cache"

    calls = []
    real = dataset.prepare
    monkeypatch.setattr(dataset, "prepare", lambda *a, **k: calls.append(a) or real(*a, **k))
    out2, m2 = prepare_or_load([str(data)], tmp_path / "cache", jobs=1)
    assert (out2, m2) == (out1, m1) and not calls  # reused, nothing parsed

    write_midi(data / "two.mid", MELODY[:2])  # new data: a new cache
    out3, m3 = prepare_or_load([str(data)], tmp_path / "cache", jobs=1)
    assert out3 != out1 and m3["files"] == 2 and len(calls) == 1

    monkeypatch.setenv("ANTIPHON_CACHE", str(tmp_path / "env-cache"))
    out4, _ = prepare_or_load([str(data)], jobs=1)
    assert out4.parent == tmp_path / "env-cache"


def test_an_interrupted_write_leaves_the_old_file(tmp_path):
    target = tmp_path / "x.json"
    target.write_text("old")

    def boom(f):
        f.write(b"partial")
        raise RuntimeError("disk full")

    with pytest.raises(RuntimeError):
        dataset._atomic_write(target, boom)
    assert target.read_text() == "old" and os.listdir(tmp_path) == ["x.json"]


def test_prepare_corpus_bach_small(tmp_path):
    summary = prepare(["corpus:bach"], tmp_path / "bach", jobs=2, corpus_limit=3)
    assert summary["files"] == 3 and not summary["skipped"]
    keys = [str(k) for s in ("train", "valid", "test") for k in load_split_arrays(tmp_path / "bach", s)["keys"]]
    assert len(keys) == 3 and all(k.startswith("bach/") for k in keys)


@pytest.mark.skipif(not JSB.exists(), reason="JSB benchmark file not present")
def test_prepare_jsb_keeps_the_json_splits(tmp_path):
    summary = prepare([f"jsb-quarter:{JSB}"], tmp_path / "jsb", jobs=1)
    assert summary["splits"]["train"]["pieces"] == 229
    assert summary["splits"]["valid"]["pieces"] == 76
    assert summary["splits"]["test"]["pieces"] == 0 and load_split(tmp_path / "jsb", "test") == []
    valid = load_split(tmp_path / "jsb", "valid")
    # every frame boundary is a time shift of 24 ticks or more in total: bar positions land on beats
    for tokens, positions in valid:
        assert positions[-1] % 24 == 0
