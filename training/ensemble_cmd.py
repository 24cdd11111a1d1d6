"""`antiphon ensemble STYLE STYLE... --data DATA --out OUT`: one style that plays the weighted mixture of
several (engine/ensemble.py), the weights fit on the data's valid split; its held-out figures recorded.
With `--views 1` each model also plays as transposed views of itself, a semitone down and up."""
from __future__ import annotations

import argparse
import json
import shlex
import sys
from pathlib import Path


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("styles", nargs="+", metavar="STYLE",
                   help="trained styles (each keeps its memory); an ensemble given here adds its models")
    p.add_argument("--views", type=int, default=0, metavar="N",
                   help="each model also plays transposed by ±1..±N semitones, as members of their own "
                        "(2N + 1 a model; default 0: none); transposed views whose fit weight is under 0.001 are left out")
    p.add_argument("--max-members", type=int, default=0, metavar="N",
                   help="keep only N members (views included), chosen one at a time for the mixture that "
                        "scores best on valid: a lighter live step (default: all)")
    p.add_argument("--data", nargs="+", required=True, metavar="DATA",
                   help="the data the weights are fit on (its valid split) and scored on")
    p.add_argument("--out", required=True, help="ensemble style file to write")
    p.add_argument("--name", help="style name stored in the file (default: the file name)")
    p.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda"])
    p.add_argument("--cache", help="prepared-data cache folder")


MIN_VIEW_WEIGHT = 1e-3


def member_target_log_probs(members, split, device) -> list:
    """Each member's log-probability (under the grammar mask) of every token that came in `split`, one
    array per member."""
    import numpy as np

    from .scoring import grammar_masks, masked_scores, member_log_probs

    masks = [grammar_masks(tokens) for tokens, _ in split.pieces]
    per_member = []
    for m in members:
        rows = [masked_scores(member_log_probs(m, tokens, positions, device), tokens, mask)[0]
                for (tokens, positions), mask in zip(split.pieces, masks)]
        per_member.append(np.concatenate(rows))
    return per_member


def mixture_nll(per_member: list) -> float:
    import numpy as np

    from engine.ensemble import fit_weights

    lp = np.stack(per_member).astype(np.float64)
    w = np.asarray(fit_weights(list(lp)))
    return float(-np.logaddexp.reduce(lp + np.log(np.maximum(w, 1e-300))[:, None], axis=0).sum())


def choose_members(members, per_member: list, limit: int) -> list[int]:
    """Forward selection: the member whose addition gives the best EM mixture on valid, one at a time,
    up to `limit`; at least one unshifted view (it gives every pitch of the keyboard a probability)."""
    chosen: list[int] = []
    while len(chosen) < min(limit, len(members)):
        candidates = [i for i in range(len(members)) if i not in chosen]
        if len(chosen) == limit - 1 and all(members[i].shift for i in chosen):
            candidates = [i for i in candidates if members[i].shift == 0]
        chosen.append(min(candidates, key=lambda i: mixture_nll([per_member[j] for j in chosen + [i]])))
    return sorted(chosen)


def fit_mixture_temperature(members, split, device) -> dict:
    """The temperature of the weighted mixture that scores best on the valid split (1 unless it helps):
    members calibrated one by one make an underconfident mixture."""
    import torch

    from engine.ensemble import mixture_log_probs

    from .memory_tune import masked_nll
    from .scoring import grammar_masks, member_log_probs

    temperatures = [round(0.7 + 0.01 * i, 2) for i in range(51)]
    totals = dict.fromkeys(temperatures, 0.0)
    n = 0
    for tokens, positions in split.pieces:
        mixed = mixture_log_probs([member_log_probs(m, tokens, positions, device) for m in members],
                                  [m.weight for m in members])
        y = torch.as_tensor(tokens[1:].astype("int64"), device=mixed.device)
        mask = torch.as_tensor(grammar_masks(tokens), device=mixed.device)
        for t in temperatures:
            totals[t] += masked_nll(mixed / t, y, mask)
        n += len(y)
    best = min(totals, key=totals.get)
    return {"temperature": best, "split_events": n, "nll_per_event": totals[best] / n,
            "nll_per_event_before": totals[1.0] / n, "temperatures": [temperatures[0], temperatures[-1]]}


def run(args) -> int:
    from engine.ensemble import MAX_MEMBERS, MAX_VIEW_SHIFT, MAX_VIEWS, Member, fit_weights
    from engine.style import load_style, save_ensemble

    from . import evaluate
    from .data import load_data
    from .train import pick_device

    if not 0 <= args.views <= MAX_VIEW_SHIFT:
        raise ValueError(f"--views is 0 to {MAX_VIEW_SHIFT} semitones, got {args.views}")
    if args.max_members and args.max_members < 2:
        raise ValueError(f"--max-members is at least 2, got {args.max_members}")
    shifts = range(-args.views, args.views + 1)
    device = pick_device(args.device)
    keep = ("name", "data", "command", "train_config", "parameters", "epoch", "valid", "init", "calibration",
            "memory_tuning", "held_out")
    models, member_meta = [], []  # (model, memory) of each distinct model, and what it came with
    for path in args.styles:
        style = load_style(path, str(device))
        if style.is_ensemble:
            entries = style.meta["members"]
            distinct = list({id(m.model): m for m in style.members}.values())
            for m, entry in zip(distinct, entries):
                models.append((m.model, m.memory))
                member_meta.append(dict({k: entry[k] for k in keep if k in entry}, source=entry.get("source", path)))
        else:
            models.append((style.model, style.memory))
            member_meta.append(dict({k: style.meta[k] for k in keep if k in style.meta}, source=path))
    members = [Member(model, memory, 1.0, k) for model, memory in models for k in shifts]
    if not 1 <= len(models) <= MAX_MEMBERS or not 2 <= len(members) <= MAX_VIEWS:
        raise ValueError(f"an ensemble takes 1 to {MAX_MEMBERS} models and 2 to {MAX_VIEWS} members in all "
                         f"(models x views); got {len(models)} x {len(shifts)}")
    data = load_data(args.data, args.cache)
    if not data["valid"].pieces:
        raise ValueError(f"no valid split in {' '.join(args.data)} to fit the weights on")
    per_member = member_target_log_probs(members, data["valid"], device)
    if args.max_members:
        chosen = choose_members(members, per_member, args.max_members)
        members, per_member = [members[i] for i in chosen], [per_member[i] for i in chosen]
    weights = fit_weights(per_member)
    # the unshifted views stay whatever their weight: they give every pitch of the keyboard a probability
    kept = [(m, w) for m, w in zip(members, weights) if w >= MIN_VIEW_WEIGHT or m.shift == 0]
    total = sum(w for _, w in kept)
    members = []
    for m, w in kept:
        m.weight = max(w / total, 1e-6)
        members.append(m)
    used = {id(m.model) for m in members}  # a model none of whose views was kept is left out
    member_meta = [meta for (model, _), meta in zip(models, member_meta) if id(model) in used]
    models = [(model, memory) for model, memory in models if id(model) in used]
    out = Path(args.out)
    meta = {"name": args.name or out.stem, "data": args.data,
            "command": "antiphon ensemble " + " ".join(shlex.quote(a) for a in sys.argv[2:])
            if sys.argv[1:2] == ["ensemble"] else "antiphon ensemble " + " ".join(args.styles),
            "parameters": sum(model.num_parameters() for model, _ in models),
            "mixture": fit_mixture_temperature(members, data["valid"], device)}
    save_ensemble(out, members, meta, member_meta)
    figures = evaluate.record_figures(out, data, args.device)
    print(json.dumps({"style": str(out), "weights": [round(m.weight, 4) for m in members],
                      "shifts": [m.shift for m in members], "mixture_temperature": meta["mixture"]["temperature"],
                      **figures}))
    return 0
