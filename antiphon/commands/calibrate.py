"""`antiphon calibrate --style FILE --data DATA [--split valid]`: choose a style's temperature on held-out
data and fold it into its weights (training/calibrate.py), then choose its session memory again for the
calibrated model, and score its held-out figures again."""
from __future__ import annotations

import argparse
import json
import sys


def add_arguments(p: argparse.ArgumentParser) -> None:
    from antiphon.commands.tune_memory import add_held_out_arguments

    add_held_out_arguments(p)
    p.add_argument("--no-memory", action="store_true", help="leave the session memory as it is")


def run(args) -> int:
    from antiphon.training.calibrate import calibrate
    from antiphon.training.data import load_data
    from antiphon.training.evaluate import record_figures
    from antiphon.training.memory_tune import tune_memory
    from antiphon.training.train import pick_device

    data = load_data(args.data, args.cache)
    if not data[args.split].pieces:
        raise ValueError(data.why_empty(args.split, args.data))
    device = pick_device(args.device)
    result = {"calibration": calibrate(args.style, data[args.split], device)}
    if not args.no_memory:
        result["memory_tuning"] = tune_memory(args.style, data[args.split], device, min_events=args.min_events)
        if "skipped" in result["memory_tuning"]:
            print(f"antiphon calibrate: {result['memory_tuning']['skipped']}", file=sys.stderr, flush=True)
    result["held_out"] = record_figures(args.style, data, args.device)
    print(json.dumps(result))
    return 0
