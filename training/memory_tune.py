"""Chooses a style's session memory (engine/memory.py) on held-out data and writes it into the style.

Each piece runs through the LSTM once; every (theta, mix) of the grid is then scored from those logits
and outputs, and the best is kept only if it beats the model alone."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from antiphon.engine.memory import MemoryConfig, memory_recall, mix_in
from antiphon.engine.model import pitch_context
from antiphon.engine.style import atomic_write_bytes, load_style, pack, resolve_style, unpack

from .data import Split
from .scoring import grammar_masks
from .splits import SMALL_SPLIT_EVENTS

THETAS = (8.0, 16.0, 24.0, 32.0)
GATES = (0.0, 4.0, 8.0, 16.0, 24.0)
MIXES = (0.05, 0.1, 0.2, 0.35, 0.5, 0.65, 0.8, 0.9, 0.95, 0.98)


@torch.no_grad()
def piece_outputs(model, tokens: np.ndarray, positions: np.ndarray, device):
    x = torch.as_tensor(tokens[:-1].astype(np.int64), device=device)[None]
    pos = torch.as_tensor(positions[:-1].astype(np.int64), device=device)[None]
    snd = rel = None
    if model.reads_pitches:
        snd, rel = (torch.from_numpy(a).to(device)[None] for a in pitch_context(tokens[:-1]))
    out, _ = model.outputs(x, pos, None, snd)
    logits = model.scores(out, x, snd, rel)[0].float()
    y = torch.as_tensor(tokens[1:].astype(np.int64), device=device)
    mask = torch.as_tensor(grammar_masks(tokens), device=device)
    return logits, out[0], y, mask


def masked_nll(logits: torch.Tensor, y: torch.Tensor, mask: torch.Tensor) -> float:
    lp = torch.log_softmax(logits.masked_fill(~mask, float("-inf")), dim=-1)
    return float(-lp.gather(1, y[:, None]).sum())


def single_style_outputs(style_path, split: Split, device, what: str) -> tuple[list, int]:
    """piece_outputs for every piece of `split` under a single (not ensemble) style, and the event count."""
    style = load_style(str(style_path), str(device))
    if style.is_ensemble:
        raise ValueError(f"{style_path} is an ensemble: {what}, then combine them again")
    pieces = [piece_outputs(style.model, t, p, device) for t, p in split.pieces]
    n = sum(len(y) for _, _, y, _ in pieces)
    if n == 0:
        raise ValueError(f"no events in the held-out split to {what.split()[0]} on")
    return pieces, n


def tune_memory(style_path: str | Path, split: Split, device="cpu", window: int = 2048,
                min_events: int = SMALL_SPLIT_EVENTS) -> dict:
    """Grid-searches the memory on `split` (valid); writes the winner (or no memory) into the style.
    Returns {"memory": config or None, "nll_per_event": with it, "nll_per_event_without": model alone}.

    On fewer than `min_events` held-out events nothing is chosen and the style is left as it was (returns
    {"skipped": the reason}): a grid of 200 settings picked on a few hundred events fits their noise."""
    events = sum(len(t) - 1 for t, _ in split.pieces)
    if events < min_events:
        return {"skipped": f"session memory not tuned: {events} held-out events, fewer than {min_events} "
                           f"(antiphon tune-memory --min-events N chooses one anyway)", "split_events": events}
    pieces, n = single_style_outputs(style_path, split, device, "tune its members' memories")
    plain = sum(masked_nll(lg, y, m) for lg, _, y, m in pieces) / n
    best, best_nll = None, plain
    for theta in THETAS:
        recalled = [memory_recall(out, y, theta, window) for _, out, y, _ in pieces]
        for gate in GATES:
            for mix in MIXES:
                nll = sum(masked_nll(mix_in(lg, p_mem, top, mix, gate), y, m)
                          for (lg, _, y, m), (p_mem, top) in zip(pieces, recalled)) / n
                if nll < best_nll:
                    best, best_nll = MemoryConfig(theta, mix, gate, window), nll
    path = resolve_style(str(style_path))
    tensors, meta = unpack(path.read_bytes(), str(path))
    meta["memory"] = best.to_dict() if best else None
    meta["memory_tuning"] = {"split_events": n, "nll_per_event": best_nll, "nll_per_event_without": plain,
                             "thetas": list(THETAS), "gates": list(GATES), "mixes": list(MIXES)}
    atomic_write_bytes(path, pack(tensors, meta))
    return {"memory": meta["memory"], "nll_per_event": best_nll, "nll_per_event_without": plain}
