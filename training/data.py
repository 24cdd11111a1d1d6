"""Token data for train/eval: JSB files directly (their frames are scored per frame), everything else
through the prepared cache (training.dataset)."""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from . import jsb

JSB_PREFIX = "jsb-quarter:"


@dataclass
class Split:
    pieces: list[tuple[np.ndarray, np.ndarray]] = field(default_factory=list)
    frames: list[int] | None = None  # per piece, for JSB data
    scored: list[int] | None = None  # per piece: tokens after BOS that encode its frames
    voices: list = field(default_factory=list)  # per piece: its tokens' voices (int8), None for one part


class Data(dict):
    """split name -> Split, plus what reading the data had to say: `skipped` files with their reasons
    and `warnings` about small or empty splits (one line each, from the prepared cache's manifest)."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.skipped: list[dict] = []
        self.warnings: list[str] = []

    def why_empty(self, split: str, specs: list[str]) -> str:
        """The line for a command that needs pieces in `split` and found none."""
        text = f"no pieces in the {split} split of {' '.join(specs)}"
        if self.skipped:
            first = "; ".join(f"{s['path']}: {s['reason']}" for s in self.skipped[:3])
            more = f" (and {len(self.skipped) - 3} more skipped)" if len(self.skipped) > 3 else ""
            text += f": {first}{more}"
        elif self.warnings:
            text += f": {self.warnings[0]}"
        return text


def load_data(specs: list[str], cache_root: str | None = None) -> Data:
    jsb_specs = [s for s in specs if s.startswith(JSB_PREFIX)]
    other = [s for s in specs if not s.startswith(JSB_PREFIX)]
    out = Data({name: Split() for name in jsb.SPLITS})
    if jsb_specs:
        for name in jsb.SPLITS:
            out[name].frames, out[name].scored = [], []
        for spec in jsb_specs:
            for name, pieces in jsb.read_jsb(spec[len(JSB_PREFIX):]).items():
                for frames in pieces:
                    tokens, positions = jsb.encode_piece(frames)
                    out[name].pieces.append((tokens, positions))
                    out[name].voices.append(None)
                    out[name].frames.append(len(frames))
                    out[name].scored.append(jsb.scored_length(tokens, len(frames)))
    if other:
        from .dataset import load_split, load_split_voices, prepare_or_load

        for spec in other:  # one cache per source: sources combine without re-reading
            cache_dir, manifest = prepare_or_load([spec], cache_root, progress=True)
            out.skipped += manifest.get("skipped", [])
            out.warnings += [f"{spec}: {w}" for w in manifest.get("warnings", [])]
            for name in jsb.SPLITS:
                pieces = load_split(cache_dir, name)
                out[name].pieces += pieces
                out[name].voices += load_split_voices(cache_dir, name)
                if out[name].frames is not None:
                    out[name].frames += [0] * len(pieces)
                    out[name].scored += [len(t) - 1 for t, _ in pieces]
    return out
