"""Style files: a trained model (or an ensemble of them, engine/ensemble.py) as one safetensors file whose
header carries Antiphon's JSON metadata.

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
from .critic import choice_from, discriminator_from, weights_from
from .ensemble import MAX_MEMBERS, MAX_VIEWS, EnsembleRuntime, Member, Transposition
from .memory import MemoryConfig
from .model import EventLSTM, ModelConfig
from .tokens import VOCABULARY

FORMAT = "antiphon-style"
FORMAT_VERSION = 2  # 2: ensemble members may list transposed views; files without them are written as 1
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
    members: list[Member] = field(default_factory=list)  # an ensemble's; `model` and `memory` are the first's
    mixture_temperature: float = 1.0  # an ensemble's: its mixture's log-probabilities are divided by it

    @property
    def config(self) -> ModelConfig:
        return self.model.config

    @property
    def is_ensemble(self) -> bool:
        return len(self.members) > 1

    def runtime(self):
        """The realtime step for this style: a StepRuntime, or an EnsembleRuntime for an ensemble."""
        from .runtime import StepRuntime

        if self.is_ensemble:
            runtime = EnsembleRuntime(self.members, self.mixture_temperature)
        else:
            runtime = StepRuntime(self.model, self.memory)
        runtime.critic_weights = weights_from(self.meta)
        runtime.critic_discriminator = discriminator_from(self.meta)
        runtime.critic_choice = choice_from(self.meta)
        return runtime


def pack(tensors: dict[str, torch.Tensor], meta: dict) -> bytes:
    """Tensors + JSON metadata -> safetensors bytes, marked with the oldest format version that reads them."""
    members = meta.get("members")
    views = isinstance(members, list) and any(isinstance(m, dict) and "views" in m for m in members)
    header = {"format": FORMAT, "version": "2" if views else "1", "antiphon": json.dumps(meta)}
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


def save_ensemble(path: str | os.PathLike, members: list[Member], meta: dict, member_meta: list[dict]) -> None:
    """One style file holding every distinct model's weights once (prefixed m0., m1., ...) with its
    config, memory and member weight; members that share a model are its transposed views, listed
    under it with their shifts and weights. `member_meta`: one dict per distinct model, in order."""
    models: list[list[Member]] = []
    for m in members:
        group = next((g for g in models if g[0].model is m.model), None)
        if group is None:
            models.append([m])
        elif group[0].memory != m.memory:
            raise ValueError("views of one model share its session memory")
        else:
            group.append(m)
    if len(member_meta) != len(models):
        raise ValueError(f"{len(models)} distinct models but {len(member_meta)} metadata entries")
    entries = []
    for group, extra in zip(models, member_meta):
        entry = dict(extra, model_config=group[0].model.config.to_dict(),
                     memory=group[0].memory.to_dict() if group[0].memory else None)
        if len(group) == 1 and group[0].shift == 0:
            entry["weight"] = group[0].weight
        else:
            entry["views"] = [{"shift": m.shift, "weight": m.weight} for m in group]
        entries.append(entry)
    meta = dict(meta, vocabulary=VOCABULARY, members=entries)
    tensors = {f"m{k}.{name}": v for k, g in enumerate(models) for name, v in g[0].model.state_dict().items()}
    atomic_write_bytes(path, pack(tensors, meta))


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


def _member_parts(path: Path, meta: dict) -> list[tuple[str, ModelConfig, MemoryConfig | None, list]]:
    """(tensor prefix, model config, memory, [(shift, weight) of each view]) of each model the style
    holds, checked."""
    def config_of(d, where):
        try:
            config = ModelConfig.from_dict(d)
            with torch.device("meta"):  # shapes only: nothing is allocated before the weights agree
                EventLSTM(config)
            return config
        except (KeyError, TypeError, ValueError, RuntimeError) as exc:
            raise StyleError(f"{path}: bad model config in the metadata{where} ({exc})") from None

    def memory_of(d, where):
        try:
            return MemoryConfig.from_dict(d) if d is not None else None
        except ValueError as exc:
            raise StyleError(f"{path}: bad session memory in the metadata{where} ({exc})") from None

    if "members" not in meta:
        if "model_config" not in meta:
            raise StyleError(f"{path}: bad model config in the metadata (none given)")
        return [("", config_of(meta["model_config"], ""), memory_of(meta.get("memory"), ""), [(0, 1.0)])]
    members = meta["members"]
    if not isinstance(members, list) or not 1 <= len(members) <= MAX_MEMBERS:
        raise StyleError(f"{path}: an ensemble style lists 1 to {MAX_MEMBERS} models")
    parts = []
    for k, m in enumerate(members):
        where = f" of member {k}"
        if not isinstance(m, dict) or "model_config" not in m:
            raise StyleError(f"{path}: member {k} is not an object with a model config")
        views = m["views"] if "views" in m else [{"shift": 0, "weight": m.get("weight")}]
        if not isinstance(views, list) or not 1 <= len(views) <= MAX_VIEWS:
            raise StyleError(f"{path}: member {k} lists 1 to {MAX_VIEWS} views")
        checked = []
        for v in views:
            w, shift = (v.get("weight"), v.get("shift")) if isinstance(v, dict) else (None, None)
            if not (type(w) in (int, float) and 0 < w <= 1):
                raise StyleError(f"{path}: member {k}'s weight must be a number in (0, 1], got {w!r}"[:200])
            try:
                Transposition(shift)
            except ValueError as exc:
                raise StyleError(f"{path}: member {k}: {exc}"[:200]) from None
            checked.append((shift, float(w)))
        if len({sh for sh, _ in checked}) != len(checked):
            raise StyleError(f"{path}: member {k} lists one transposition twice")
        parts.append((f"m{k}.", config_of(m["model_config"], where), memory_of(m.get("memory"), where), checked))
    total = sum(len(p[3]) for p in parts)
    if not 2 <= total <= MAX_VIEWS:
        raise StyleError(f"{path}: an ensemble style has 2 to {MAX_VIEWS} members in all, got {total}")
    return parts


def load_style(name_or_path: str, device: str = "cpu") -> Style:
    path = resolve_style(name_or_path)
    tensors, meta = unpack(path.read_bytes(), str(path))
    if meta.get("kind") == "checkpoint":
        style = path.with_name(path.name[:-len(".ckpt")]) if path.name.endswith(".ckpt") else None
        raise StyleError(f"{path}: a training checkpoint (for train --resume), not a style; play the style "
                         f"train wrote beside it{f', {style}' if style else ''}")
    if meta.get("vocabulary") != VOCABULARY:
        raise StyleError(f"{path}: made for another token vocabulary; retrain it with this Antiphon")
    parts = _member_parts(path, meta)
    expected = {}
    for prefix, config, _, _ in parts:
        with torch.device("meta"):
            expected.update({prefix + k: tuple(v.shape) for k, v in EventLSTM(config).state_dict().items()})
    found = {k: tuple(v.shape) for k, v in tensors.items()}
    if found != expected:
        raise StyleError(f"{path}: weights do not match the style's model config")
    members = []
    for prefix, config, memory, views in parts:
        model = EventLSTM(config)
        model.load_state_dict({k[len(prefix):]: v for k, v in tensors.items() if k.startswith(prefix)}, strict=True)
        model = model.to(device).eval()
        members += [Member(model, memory, weight, shift) for shift, weight in views]
    try:
        weights_from(meta)
        discriminator_from(meta)
    except ValueError as exc:
        raise StyleError(f"{path}: {exc}"[:300]) from None
    first = members[0]
    return Style(str(meta.get("name", path.stem)), first.model, meta, first.memory, members,
                 _mixture_temperature(path, meta))


def _mixture_temperature(path: Path, meta: dict) -> float:
    mixture = meta.get("mixture", {})
    t = mixture.get("temperature", 1.0) if isinstance(mixture, dict) else None
    if not (type(t) in (int, float) and 0.25 <= t <= 4.0):
        raise StyleError(f"{path}: the mixture's temperature must be a number in [0.25, 4], got {t!r}"[:200])
    return float(t)
