"""Style files from strangers: safetensors files whose metadata is hostile, huge or of the wrong types are refused
with a StyleError that says why, quickly and without allocating what the metadata asks for; a pickle passed to
`antiphon live --style` runs nothing."""
from __future__ import annotations

import json
import pickle
import resource
import struct
import subprocess
import sys
import time
from pathlib import Path

import pytest

from antiphon.engine.model import EventLSTM, ModelConfig
from antiphon.engine.style import StyleError, load_style, pack, save_style, unpack
from tests.test_style import WritesAFile

ROOT = Path(__file__).resolve().parent.parent


def _raw(header: dict, body: bytes = b"") -> bytes:
    h = json.dumps(header).encode()
    return struct.pack("<Q", len(h)) + h + body


@pytest.fixture(scope="module")
def good(tmp_path_factory):
    path = tmp_path_factory.mktemp("good") / "g.style"
    save_style(path, EventLSTM(ModelConfig(embed=16, hidden=24, layers=1)), {"name": "g"})
    tensors, meta = unpack(path.read_bytes())
    return tensors, meta


def _cases(good):
    tensors, meta = good
    cfg = meta["model_config"]
    info = {"format": "antiphon-style", "version": "1"}
    deep = "[" * 100_000 + "]" * 100_000
    return {
        "version not a number": lambda: pack(tensors, meta).replace(b'"version":"1"', b'"version":"x"'),
        "version with 5000 digits": lambda: _raw({"__metadata__": dict(info, version="9" * 5000)}),
        "metadata not a dict": lambda: _raw({"__metadata__": ["format", "antiphon-style"]}),
        "antiphon metadata not a string": lambda: _raw({"__metadata__": dict(info, antiphon=None)}),
        "antiphon metadata a JSON list": lambda: pack(tensors, {}).replace(b'"antiphon":"{}"', b'"antiphon":"[]"'),
        "antiphon metadata nested 100000 deep": lambda: _raw({"__metadata__": dict(info, antiphon=deep)}),
        "header nested 100000 deep": lambda: struct.pack("<Q", len(deep)) + deep.encode(),
        "header of 15 MB": lambda: _raw({"__metadata__": dict(info, antiphon=json.dumps({"name": "x" * 15_000_000}))}),
        "no vocabulary": lambda: pack(tensors, {k: v for k, v in meta.items() if k != "vocabulary"}),
        "no model config": lambda: pack(tensors, {k: v for k, v in meta.items() if k != "model_config"}),
        "model config a list": lambda: pack(tensors, dict(meta, model_config=[1, 2])),
        "model config unknown key": lambda: pack(tensors, dict(meta, model_config=dict(cfg, exploit="os.system"))),
        "hidden a string": lambda: pack(tensors, dict(meta, model_config=dict(cfg, hidden="24"))),
        "hidden negative": lambda: pack(tensors, dict(meta, model_config=dict(cfg, hidden=-24))),
        "hidden a float": lambda: pack(tensors, dict(meta, model_config=dict(cfg, hidden=24.5))),
        "dropout a string": lambda: pack(tensors, dict(meta, model_config=dict(cfg, dropout="0.1"))),
        # the weights are 24 wide: a model built from the config before checking them allocates what it says
        "hidden 6000 (600 MB)": lambda: pack(tensors, dict(meta, model_config=dict(cfg, hidden=6000))),
        "memory mix 2": lambda: pack(tensors, dict(meta, memory={"theta": 8, "mix": 2})),
        "memory theta NaN": lambda: pack(tensors, dict(meta, memory={"theta": float("nan"), "mix": 0.1})),
        "memory window of 10**9 steps": lambda: pack(tensors, dict(meta, memory={"theta": 8, "mix": 0.1, "window": 10**9})),
        "memory unknown key": lambda: pack(tensors, dict(meta, memory={"theta": 8, "mix": 0.1, "code": "os.system"})),
        "memory a string": lambda: pack(tensors, dict(meta, memory="theta=8")),
        "tensor offsets past the end": lambda: pack(tensors, meta)[:-100],
    }


@pytest.mark.parametrize("name", list(_cases((None, {"model_config": {}}))))
def test_hostile_metadata_is_refused_quickly_and_says_why(good, tmp_path, name, request):
    path = tmp_path / "hostile.style"
    path.write_bytes(_cases(good)[name]())
    rss0 = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    t0 = time.perf_counter()
    try:
        style = load_style(str(path))
        outcome = f"LOADED (name {style.name!r})"
    except StyleError as exc:
        outcome = f"refused: {str(exc).replace(str(path), 'FILE')[:140]}"
    except BaseException as exc:  # noqa: BLE001 - what escapes is the finding
        outcome = f"ESCAPED {type(exc).__name__}: {str(exc)[:100]}"
    ms = (time.perf_counter() - t0) * 1e3
    grew_mb = (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - rss0) / 1024
    print(f"\n{name}: {outcome} ({ms:.0f} ms, peak RSS +{grew_mb:.0f} MB)")
    assert outcome.startswith("refused")
    assert ms < 2000 and grew_mb < 200


def test_the_loaded_name_is_a_string(good, tmp_path):
    tensors, meta = good
    path = tmp_path / "n.style"
    path.write_bytes(pack(tensors, dict(meta, name=12345)))
    style = load_style(str(path))
    assert style.name == "12345"


@pytest.mark.slow
@pytest.mark.parametrize("suffix", [".style", ".pt", ".pth"])
def test_antiphon_live_refuses_a_pickled_style(tmp_path, suffix):
    marker = tmp_path / "pwned"
    evil = tmp_path / f"evil{suffix}"
    evil.write_bytes(pickle.dumps({"state_dict": WritesAFile(str(marker))}))
    r = subprocess.run([sys.executable, "-m", "antiphon", "live", "--headless", "--backend", "jack", "--style",
                        str(evil), "--duration", "1"], capture_output=True, text=True, timeout=120, cwd=ROOT)
    print(f"\nantiphon live --style evil{suffix}: exit {r.returncode}: {r.stderr.strip()[-200:]}")
    assert r.returncode == 1
    assert "pickle" in r.stderr and "Nothing was loaded" in r.stderr and "Traceback" not in r.stderr
    assert not marker.exists()
