"""`antiphon` command line: one subcommand per module of antiphon.commands, each with add_arguments(parser)
and run(args).

Every command follows one rule for bad input: one line on stderr naming the flag or the file and the
reason, and a non-zero exit (2 for a value refused while parsing, 1 for a file or a state refused while
running); no traceback unless ANTIPHON_DEBUG=1.
"""
from __future__ import annotations

import argparse
import importlib
import os
import sys

from antiphon import __version__

COMMANDS = {
    "prepare": "read MIDI/MusicXML/kern/ABC/corpus data into cached token arrays",
    "train": "train a style (an LSTM) on MIDI data",
    "eval": "score a style (or a Markov baseline) on held-out data",
    "tune-memory": "choose a style's session memory on held-out data",
    "calibrate": "choose a style's temperature on held-out data (then its memory)",
    "ensemble": "combine trained styles into one that plays their mixture",
    "generate": "continue a MIDI file offline",
    "live": "play live: virtual MIDI ports, clock sync, panel",
    "ports": "list MIDI backends and ports",
    "demo": "call and answer on a corpus phrase, no MIDI gear needed",
    "bench": "measure step time, timing under load, throughput, answers",
}


class HelpFormatter(argparse.ArgumentDefaultsHelpFormatter):
    """Shows each flag's default (where it has one worth showing)."""

    def _get_help_string(self, action):
        text = action.help or ""
        if action.default in (None, False, argparse.SUPPRESS) or "%(default)" in text or action.option_strings == []:
            return text
        if isinstance(action.default, list) and not action.default:
            return text
        return text + " (default: %(default)s)"


class Parser(argparse.ArgumentParser):
    """argparse with one-line errors: `antiphon live: --temperature: must be in 0.05..3, got 100`."""

    def error(self, message: str):
        self.exit(2, f"{self.prog}: {message} (see {self.prog} --help)\n")


def command_module(name: str):
    return importlib.import_module(f"antiphon.commands.{name.replace('-', '_')}")


def build_parser() -> argparse.ArgumentParser:
    parser = Parser(prog="antiphon", description="A live AI duet partner over MIDI.", formatter_class=HelpFormatter)
    parser.add_argument("--version", action="version", version=f"antiphon {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND", parser_class=Parser)
    for name, help_text in COMMANDS.items():
        p = sub.add_parser(name, help=help_text, description=help_text, formatter_class=HelpFormatter)
        mod = command_module(name)
        mod.add_arguments(p)
        p.set_defaults(_module=mod, _parser=p)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args, extra = parser.parse_known_args(argv)
    if extra:  # reported by the subcommand's own parser, so its usage is the one shown
        args._parser.error(f"unrecognized arguments: {' '.join(extra)}")
    try:
        return int(args._module.run(args) or 0)
    except KeyboardInterrupt:
        return 130
    except (ValueError, OSError, RuntimeError) as exc:
        if os.environ.get("ANTIPHON_DEBUG"):
            raise
        print(f"antiphon {args.command}: {one_line(exc)}", file=sys.stderr)
        return 1


def one_line(exc: BaseException) -> str:
    text = " ".join(str(exc).split()) or type(exc).__name__
    return text if len(text) <= 400 else text[:397] + "..."


if __name__ == "__main__":
    sys.exit(main())
