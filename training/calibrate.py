"""Calibrates a style on held-out data: one temperature T for its next-token logits, chosen on valid
(Guo et al. 2017), folded into the output layers so that nothing else changes.

A model trained to the epoch where valid is best has already begun to overfit: it is too sure of itself
on music it has not seen. Every logit is linear in the head and the interval head, so scaling their
weights and biases by 1/T scales the logits by 1/T, and the realtime step needs no change."""
from __future__ import annotations

from pathlib import Path

import numpy as np

from antiphon.engine.style import atomic_write_bytes, pack, resolve_style, unpack

from .data import Split
from .memory_tune import masked_nll, single_style_outputs

TEMPERATURES = tuple(round(float(t), 3) for t in np.arange(0.8, 2.0001, 0.02))
OUTPUT_LAYERS = ("head.weight", "head.bias", "interval_proj.weight", "interval_proj.bias")


def calibrate(style_path: str | Path, split: Split, device="cpu") -> dict:
    """Chooses T on `split` (valid) and writes the scaled style; T = 1 (no change) unless it helps.
    Returns {"temperature": T, "nll_per_event": with it, "nll_per_event_before": without}."""
    pieces, n = single_style_outputs(style_path, split, device, "calibrate its members")
    scores = {t: sum(masked_nll(lg / t, y, m) for lg, _, y, m in pieces) / n for t in TEMPERATURES + (1.0,)}
    best = min(scores, key=scores.get)
    path = resolve_style(str(style_path))
    tensors, meta = unpack(path.read_bytes(), str(path))
    before = meta.get("calibration", {}).get("temperature", 1.0)
    if best != 1.0:
        for name in OUTPUT_LAYERS:
            if name in tensors:
                tensors[name] = tensors[name] / best
    meta["calibration"] = {"temperature": best * before, "split_events": n, "nll_per_event": scores[best],
                           "nll_per_event_before": scores[1.0], "temperatures": [TEMPERATURES[0], TEMPERATURES[-1]]}
    atomic_write_bytes(path, pack(tensors, meta))
    return {"temperature": best, "nll_per_event": scores[best], "nll_per_event_before": scores[1.0]}
