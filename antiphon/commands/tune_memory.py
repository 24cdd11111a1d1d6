"""`antiphon tune-memory --style FILE --data DATA [--split valid]`: choose (or drop) a style's session
memory on held-out data and write it into the style file, with its held-out figures scored again."""
from __future__ import annotations

import argparse
import json

from antiphon import arguments
from antiphon.training.splits import SMALL_SPLIT_EVENTS


def add_held_out_arguments(p: argparse.ArgumentParser) -> None:
    """What every command that tunes a style on held-out data takes."""
    p.add_argument("--style", required=True, help="style file to tune (rewritten in place)")
    p.add_argument("--data", nargs="+", required=True, metavar="DATA",
                   help="files, folders, corpus:NAME or jsb-quarter:PATH (the style's own data)")
    p.add_argument("--split", default="valid", choices=["train", "valid", "test"],
                   help="held-out split to choose on (never the split you report)")
    p.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda"],
                   help="where to score (auto: CUDA when torch sees a GPU)")
    p.add_argument("--cache", help="prepared-data cache folder (default ./cache or $ANTIPHON_CACHE)")
    p.add_argument("--min-events", type=arguments.int_in(1), default=SMALL_SPLIT_EVENTS, metavar="N",
                   help="choose a session memory only on at least N held-out events (fewer fit the noise)")


def add_arguments(p: argparse.ArgumentParser) -> None:
    add_held_out_arguments(p)
    p.add_argument("--window", type=arguments.int_in(1, 1 << 16), default=2048, help="past events the memory looks at")


def run(args) -> int:
    from antiphon.training.data import load_data
    from antiphon.training.evaluate import record_figures
    from antiphon.training.memory_tune import tune_memory
    from antiphon.training.train import pick_device

    data = load_data(args.data, args.cache)
    if not data[args.split].pieces:
        raise ValueError(data.why_empty(args.split, args.data))
    tuned = tune_memory(args.style, data[args.split], pick_device(args.device), args.window, args.min_events)
    if "skipped" in tuned:
        raise ValueError(tuned["skipped"])
    # the style's recorded held-out figures were the model's alone: score them again as it now plays
    tuned["held_out"] = record_figures(args.style, data, args.device)
    print(json.dumps(tuned))
    return 0
