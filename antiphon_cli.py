"""`antiphon` command line: one subcommand per module, each with add_arguments(parser) and run(args)."""
from __future__ import annotations

import argparse
import importlib
import sys

COMMANDS = {
    "prepare": ("training.prepare_cmd", "read MIDI/MusicXML/kern/ABC/corpus data into cached token arrays"),
    "train": ("training.train_cmd", "train a style (an LSTM) on MIDI data"),
    "eval": ("training.eval_cmd", "score a style (or a Markov baseline) on held-out data"),
    "tune-memory": ("training.tune_memory_cmd", "choose a style's session memory on held-out data"),
    "calibrate": ("training.calibrate_cmd", "choose a style's temperature on held-out data (then its memory)"),
    "ensemble": ("training.ensemble_cmd", "combine trained styles into one that plays their mixture"),
    "generate": ("training.generate_cmd", "continue a MIDI file offline"),
    "live": ("plugin.live_cmd", "play live: virtual MIDI ports, clock sync, panel"),
    "ports": ("plugin.ports_cmd", "list MIDI backends and ports"),
    "demo": ("plugin.demo_cmd", "call and answer on a corpus phrase, no MIDI gear needed"),
    "bench": ("plugin.bench_cmd", "measure step time, timing under load, throughput"),
}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="antiphon", description="A live AI duet partner over MIDI.")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name, (module, help_text) in COMMANDS.items():
        p = sub.add_parser(name, help=help_text, description=help_text)
        try:
            mod = importlib.import_module(module)
        except ModuleNotFoundError as exc:
            if exc.name != module:
                raise
            p.set_defaults(_module=None)
            continue
        mod.add_arguments(p)
        p.set_defaults(_module=mod)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args._module is None:
        print(f"antiphon {args.command}: not available in this build", file=sys.stderr)
        return 2
    try:
        return int(args._module.run(args) or 0)
    except KeyboardInterrupt:
        return 130
    except (ValueError, FileNotFoundError, OSError) as exc:
        print(f"antiphon {args.command}: {exc}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
