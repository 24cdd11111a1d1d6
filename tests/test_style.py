"""Style files: safetensors + JSON metadata round trip; anything else is refused and runs nothing."""
import pickle
import struct
import zipfile

import pytest
import torch

from antiphon.engine.model import EventLSTM, ModelConfig
from antiphon.engine.style import StyleError, load_style, save_style, shipped_styles


class WritesAFile:
    """Unpickling this would create a file: the payload a hostile style would carry."""

    def __init__(self, path):
        self.path = path

    def __reduce__(self):
        return (open, (self.path, "w"))


def test_round_trip(tmp_path):
    model = EventLSTM(ModelConfig(embed=16, hidden=24, layers=2))
    path = tmp_path / "mine.style"
    save_style(path, model, {"name": "mine", "data": ["corpus:bach"]})
    style = load_style(str(path))
    assert style.name == "mine" and style.meta["data"] == ["corpus:bach"]
    for k, v in model.state_dict().items():
        assert torch.equal(style.model.state_dict()[k], v)


@pytest.mark.parametrize("suffix", [".style", ".pt", ".pth"])
def test_a_pickle_runs_nothing_and_says_why(tmp_path, suffix):
    marker = tmp_path / "pwned"
    evil = tmp_path / f"evil{suffix}"
    evil.write_bytes(pickle.dumps({"state_dict": WritesAFile(str(marker))}))
    with pytest.raises(StyleError, match="pickle"):
        load_style(str(evil))
    assert not marker.exists()


def test_a_torch_zip_checkpoint_is_refused(tmp_path):
    marker = tmp_path / "pwned"
    evil = tmp_path / "model.pt"
    with zipfile.ZipFile(evil, "w") as z:
        z.writestr("archive/data.pkl", pickle.dumps(WritesAFile(str(marker))))
    with pytest.raises(StyleError, match="pickle or a torch checkpoint"):
        load_style(str(evil))
    assert not marker.exists()


def test_foreign_safetensors_and_garbage_are_refused(tmp_path):
    from safetensors.torch import save_file

    other = tmp_path / "other.safetensors"
    save_file({"w": torch.zeros(2)}, str(other))
    with pytest.raises(StyleError, match="not an Antiphon style"):
        load_style(str(other))
    junk = tmp_path / "junk.style"
    junk.write_bytes(b"\x00" * 3)
    with pytest.raises(StyleError):
        load_style(str(junk))
    lying = tmp_path / "lying.style"
    lying.write_bytes(struct.pack("<Q", 10**12) + b"{}")
    with pytest.raises(StyleError):
        load_style(str(lying))


def test_weights_that_do_not_match_the_config_are_refused(tmp_path):
    model = EventLSTM(ModelConfig(embed=16, hidden=24, layers=2))
    path = tmp_path / "bad.style"
    save_style(path, model, {"name": "bad"})
    from antiphon.engine.style import pack, unpack

    tensors, meta = unpack(path.read_bytes())
    meta["model_config"]["hidden"] = 32
    path.write_bytes(pack(tensors, meta))
    with pytest.raises(StyleError, match="do not match"):
        load_style(str(path))


def test_unknown_style_names_list_the_shipped_ones():
    with pytest.raises(FileNotFoundError, match="shipped"):
        load_style("no-such-style")
    assert isinstance(shipped_styles(), list)
