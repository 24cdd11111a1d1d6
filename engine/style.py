"""Style files: a trained model as one safetensors file whose header carries Antiphon's JSON metadata.

Loading parses the safetensors header (JSON) and raw tensor bytes only: nothing is unpickled, nothing
runs. Anything else (a torch .pt/.pth pickle, a zip, a file of another schema) is refused with a
clear message. Shipped styles live in engine/styles/NAME.style and resolve by name.
"""
from __future__ import annotations

import json
import os
import struct
from dataclasses import dataclass, field
from pathlib import Path

import torch
from safetensors.torch import load as st_load
from safetensors.torch import save as st_save

from .atomic import atomic_write_bytes
from .memory import MemoryConfig
from .model import EventLSTM, ModelConfig
from .tokens import VOCABULARY

FORMAT = "antiphon-style"
FORMAT_VERSION = 1
SHIPPED_DIR = Path(__file__).parent / "styles"
SUFFIX = ".style"
MAX_HEADER = 16 * 1024 * 1024


class StyleError(ValueError):
    pass


@dataclass
class Style:
    name: str
    model: EventLSTM
    meta: dict = field(default_factory=dict)
    memory: MemoryConfig | None = None  # the session memory chosen for this style (engine/memory.py)

    @property
    def config(self) -> ModelConfig:
        return self.model.config


def pack(tensors: dict[str, torch.Tensor], meta: dict) -> bytes:
    """Tensors + JSON metadata -> safetensors bytes."""
    header = {"format": FORMAT, "version": str(FORMAT_VERSION), "antiphon": json.dumps(meta)}
    return st_save({k: v.detach().to("cpu").contiguous() for k, v in tensors.items()}, metadata=header)


def unpack(data: bytes, source: str = "style") -> tuple[dict[str, torch.Tensor], dict]:
    """safetensors bytes -> (tensors, metadata); refuses anything else with a reason."""
    header = None
    if len(data) >= 8:
        (n,) = struct.unpack("<Q", data[:8])
        if n <= MAX_HEADER and 8 + n <= len(data):
            try:
                header = json.loads(data[8:8 + n])
            except (UnicodeDecodeError, json.JSONDecodeError, RecursionError):
                header = None
    if header is None:
        if data[:2] == b"PK" or (data[:1] == b"\x80" and data[1:2] in (b"\x02", b"\x03", b"\x04", b"\x05")):
            raise StyleError(f"{source}: this is a pickle or a torch checkpoint (.pt/.pth); Antiphon only "
                             f"loads safetensors style files, which cannot run code. Nothing was loaded.")
        raise StyleError(f"{source}: not a safetensors style file")
    info = header.get("__metadata__") if isinstance(header, dict) else None
    if not isinstance(info, dict) or info.get("format") != FORMAT:
        raise StyleError(f"{source}: a safetensors file, but not an Antiphon style (no '{FORMAT}' metadata)")
    version = str(info.get("version", ""))
    if not (version.isdigit() and len(version) < 6):
        raise StyleError(f"{source}: style format version {version[:20]!r} is not a number")
    if int(version) > FORMAT_VERSION:
        raise StyleError(f"{source}: style format {version} is newer than this Antiphon reads")
    try:
        meta = json.loads(info["antiphon"])
        tensors = st_load(data)
    except (Exception, RecursionError) as exc:  # a damaged file: report, never load half of it
        raise StyleError(f"{source}: damaged style file ({type(exc).__name__})") from None
    if not isinstance(meta, dict):
        raise StyleError(f"{source}: style metadata must be a JSON object")
    return tensors, meta


def save_style(path: str | os.PathLike, model: EventLSTM, meta: dict) -> None:
    meta = dict(meta)
    meta["model_config"] = model.config.to_dict()
    meta["vocabulary"] = VOCABULARY
    atomic_write_bytes(path, pack(model.state_dict(), meta))


def resolve_style(name_or_path: str) -> Path:
    p = Path(name_or_path).expanduser()
    if p.is_file():
        return p
    shipped = SHIPPED_DIR / f"{name_or_path}{SUFFIX}"
    if "/" not in name_or_path and shipped.is_file():
        return shipped
    raise FileNotFoundError(f"no style file or shipped style named {name_or_path!r} "
                            f"(shipped: {', '.join(shipped_styles()) or 'none'})")


def shipped_styles() -> list[str]:
    return sorted(p.stem for p in SHIPPED_DIR.glob(f"*{SUFFIX}"))


def load_style(name_or_path: str, device: str = "cpu") -> Style:
    path = resolve_style(name_or_path)
    tensors, meta = unpack(path.read_bytes(), str(path))
    if meta.get("vocabulary") != VOCABULARY:
        raise StyleError(f"{path}: made for another token vocabulary; retrain it with this Antiphon")
    try:
        config = ModelConfig.from_dict(meta["model_config"])
        with torch.device("meta"):  # shapes only: nothing is allocated before the weights agree
            expected = {k: tuple(v.shape) for k, v in EventLSTM(config).state_dict().items()}
    except (KeyError, TypeError, ValueError, RuntimeError) as exc:
        raise StyleError(f"{path}: bad model config in the metadata ({exc})") from None
    try:
        memory = MemoryConfig.from_dict(meta["memory"]) if meta.get("memory") is not None else None
    except ValueError as exc:
        raise StyleError(f"{path}: bad session memory in the metadata ({exc})") from None
    found = {k: tuple(v.shape) for k, v in tensors.items()}
    if found != expected:
        raise StyleError(f"{path}: weights do not match the style's model config")
    model = EventLSTM(config)
    model.load_state_dict(tensors, strict=True)
    return Style(str(meta.get("name", path.stem)), model.to(device).eval(), meta, memory)
