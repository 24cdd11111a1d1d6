"""`antiphon ensemble STYLE STYLE... --data DATA --out OUT`: one style that plays the weighted mixture of
several (engine/ensemble.py), the weights fit on the data's valid split; its held-out figures recorded.
With `--views 1` each model also plays as transposed views of itself, a semitone down and up."""
from __future__ import annotations

import argparse
import json
import shlex
import sys
from pathlib import Path

from antiphon import arguments


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("styles", nargs="+", metavar="STYLE",
                   help="trained styles (each keeps its memory); an ensemble given here adds its models")
    # 12 is engine.ensemble.MAX_VIEW_SHIFT (not imported here: parsing stays free of torch)
    p.add_argument("--views", type=arguments.int_in(0, 12), default=0, metavar="N",
                   help="each model also plays transposed by ±1..±N semitones, as members of their own "
                        "(2N + 1 a model; 0: none); transposed views whose fit weight is under 0.001 are left out")
    p.add_argument("--max-members", type=arguments.int_in(0), default=0, metavar="N",
                   help="keep only N members (views included, N >= 2), chosen one at a time for the mixture that "
                        "scores best on valid: a lighter live step (0: all)")
    p.add_argument("--data", nargs="+", required=True, metavar="DATA",
                   help="the data the weights are fit on (its valid split) and scored on")
    p.add_argument("--out", required=True, type=arguments.writable_file, help="ensemble style file to write")
    p.add_argument("--name", help="style name stored in the file (default: the file name)")
    p.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda"],
                   help="where to score (auto: CUDA when torch sees a GPU)")
    p.add_argument("--cache", help="prepared-data cache folder (default ./cache or $ANTIPHON_CACHE)")


def run(args) -> int:
    from antiphon.engine.ensemble import MAX_MEMBERS, MAX_VIEW_SHIFT, MAX_VIEWS, Member, fit_weights
    from antiphon.engine.style import load_style, save_ensemble

    from antiphon.training import evaluate
    from antiphon.training.ensembling import (MIN_VIEW_WEIGHT, choose_members, fit_mixture_temperature,
                                             member_target_log_probs)
    from antiphon.training.data import load_data
    from antiphon.training.train import pick_device

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
        raise ValueError(data.why_empty("valid", args.data) + ": the weights are fit on it")
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
