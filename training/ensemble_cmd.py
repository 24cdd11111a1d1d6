"""`antiphon ensemble STYLE STYLE... --data DATA --out OUT`: one style that plays the weighted mixture of
several (engine/ensemble.py), the weights fit on the data's valid split; its held-out figures recorded."""
from __future__ import annotations

import argparse
import json
import shlex
import sys
from pathlib import Path


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("styles", nargs="+", metavar="STYLE", help="two or more trained styles (each keeps its memory)")
    p.add_argument("--data", nargs="+", required=True, metavar="DATA",
                   help="the data the weights are fit on (its valid split) and scored on")
    p.add_argument("--out", required=True, help="ensemble style file to write")
    p.add_argument("--name", help="style name stored in the file (default: the file name)")
    p.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda"])
    p.add_argument("--cache", help="prepared-data cache folder")


def fit_member_weights(members, split, device) -> list[float]:
    """EM on the valid split: each member's probability of every token that came."""
    import numpy as np
    import torch

    from engine.ensemble import fit_weights

    from .scoring import stream_log_probs

    per_member = []
    for m in members:
        rows = []
        for tokens, positions in split.pieces:
            lp = stream_log_probs(m.model, tokens, positions, device, memory=m.memory)
            y = torch.as_tensor(tokens[1:].astype(np.int64), device=lp.device)
            rows.append(lp.gather(1, y[:, None])[:, 0].cpu().numpy())
        per_member.append(np.concatenate(rows))
    return fit_weights(per_member)


def run(args) -> int:
    from engine.ensemble import MAX_MEMBERS, Member
    from engine.style import load_style, save_ensemble

    from . import evaluate
    from .data import load_data
    from .train import pick_device

    if not 2 <= len(args.styles) <= MAX_MEMBERS:
        raise ValueError(f"an ensemble takes 2 to {MAX_MEMBERS} styles")
    device = pick_device(args.device)
    styles = [load_style(s, str(device)) for s in args.styles]
    if any(s.is_ensemble for s in styles):
        raise ValueError("an ensemble's members must be single styles: list the members themselves")
    data = load_data(args.data, args.cache)
    if not data["valid"].pieces:
        raise ValueError(f"no valid split in {' '.join(args.data)} to fit the weights on")
    members = [Member(s.model, s.memory, 1.0) for s in styles]
    weights = fit_member_weights(members, data["valid"], device)
    for m, w in zip(members, weights):
        m.weight = max(w, 1e-6)
    out = Path(args.out)
    keep = ("name", "data", "command", "train_config", "parameters", "epoch", "valid", "init", "calibration",
            "memory_tuning", "held_out")
    member_meta = [dict({k: s.meta[k] for k in keep if k in s.meta}, source=path)
                   for s, path in zip(styles, args.styles)]
    meta = {"name": args.name or out.stem, "data": args.data,
            "command": "antiphon ensemble " + " ".join(shlex.quote(a) for a in sys.argv[2:])
            if sys.argv[1:2] == ["ensemble"] else "antiphon ensemble " + " ".join(args.styles),
            "parameters": sum(s.model.num_parameters() for s in styles)}
    save_ensemble(out, members, meta, member_meta)
    figures = evaluate.record_figures(out, data, args.device)
    print(json.dumps({"style": str(out), "weights": [round(w, 4) for w in weights], **figures}))
    return 0
