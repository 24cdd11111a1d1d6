"""`antiphon eval --style STYLE --data DATA --split test --json` (or `--baseline markov`)."""
from __future__ import annotations

import argparse
import json

from antiphon import arguments
import sys


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--style", help="style name (e.g. default) or style file")
    p.add_argument("--baseline", choices=["markov"], help="score a variable-order Markov model fit on the "
                   "data's train split instead of a style")
    p.add_argument("--data", nargs="+", required=True, metavar="DATA",
                   help="files, folders, corpus:NAME or jsb-quarter:PATH")
    p.add_argument("--split", default="test", choices=["train", "valid", "test"], help="which split to score")
    p.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda"],
                   help="where to score (auto: CUDA when torch sees a GPU)")
    p.add_argument("--transpose", type=arguments.int_in(0, 12), default=6,
                   help="Markov baseline: transposition augmentation of its train split (semitones)")
    p.add_argument("--no-memory", action="store_true",
                   help="score the LSTM alone, without the style's session memory")
    p.add_argument("--band", action="store_true",
                   help="also score the band's notes beside a player's: in pieces of several parts the top part "
                        "plays, the others are the band; NLL of the band's tokens with who plays what named "
                        "(models trained with --role-input) and without")
    p.add_argument("--cache", help="prepared-data cache folder (default ./cache or $ANTIPHON_CACHE)")
    p.add_argument("--json", action="store_true", help="print one JSON object")


def run(args) -> int:
    from antiphon.training.data import load_data
    from antiphon.training.evaluate import score_band, score_markov, score_style

    if bool(args.style) == bool(args.baseline):
        raise ValueError("give exactly one of --style and --baseline")
    data = load_data(args.data, args.cache)
    for line in data.warnings:
        print(f"antiphon eval: warning: {line}", file=sys.stderr, flush=True)
    if not data[args.split].pieces:
        raise ValueError(data.why_empty(args.split, args.data))
    if args.style:
        result = score_style(args.style, data[args.split], args.device, memory=not args.no_memory)
        if args.band:
            result.update(score_band(args.style, data[args.split], args.device))
        result["style"] = args.style
    else:
        result = score_markov(data, args.split, args.transpose)
    result["split"] = args.split
    if args.json:
        print(json.dumps(result))
    elif args.style:
        from antiphon.engine.style import load_style
        from antiphon.training.style_report import continuations, report

        cont = continuations(load_style(args.style).runtime(), data[args.split], arguments.DEFAULT_TEMPERATURE,
                             arguments.DEFAULT_TOP_P)
        markov = score_markov(data, args.split, args.transpose)
        print("\n".join(report(args.style, args.split, result, markov, cont,
                               f"antiphon live --style {args.style}")))
    else:
        print(f"the Markov baseline on the {args.split} split: {result['nll_per_event']:.2f} nats per event "
              f"(lower is better; order {result['order']}), {result['events']} events")
    return 0
