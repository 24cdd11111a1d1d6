"""`antiphon` command line: one subcommand per module of antiphon.commands, each with add_arguments(parser)
and run(args).

Every command follows one rule for bad input: one line on stderr naming the flag or the file and the
reason, and a non-zero exit (2 for a value refused while parsing, 1 for a file or a state refused while
running); no traceback unless ANTIPHON_DEBUG=1.
"""
from __future__ import annotations

import argparse
import difflib
import importlib
import os
import re
import sys

from antiphon import __version__

COMMANDS = {
    "prepare": "read MIDI/MusicXML/kern/ABC/corpus data into cached token arrays",
    "train": "train a style (an LSTM) on MIDI data",
    "eval": "score a style (or a Markov baseline) on held-out data",
    "tune-memory": "choose a style's session memory on held-out data",
    "calibrate": "choose a style's temperature on held-out data (then its memory)",
    "ensemble": "combine trained styles into one that plays their mixture",
    "fit-critic": "fit the critic that chooses among planned answers, on valid calls",
    "generate": "continue a MIDI file offline",
    "live": "play live: virtual MIDI ports, clock sync, panel",
    "ports": "list MIDI backends and ports",
    "demo": "call and answer on a corpus phrase, no MIDI gear needed",
    "bench": "measure step time, timing under load, throughput, answers",
}


class HelpFormatter(argparse.ArgumentDefaultsHelpFormatter):
    """Shows each flag's default (where it has one worth showing: not for switches that are off, nor
    for flags whose absence the help line itself explains)."""

    def _get_help_string(self, action):
        text = action.help or ""
        unset = action.default is None or action.default is False or action.default == argparse.SUPPRESS
        if unset or "%(default)" in text or action.option_strings == []:  # `is`: a default of 0 is shown
            return text
        if isinstance(action.default, list) and not action.default:
            return text
        return text + " (default: %(default)s)"


class Parser(argparse.ArgumentParser):
    """argparse with one-line errors: `antiphon live: --temperature: must be within 0.05..3, got 100`."""

    def error(self, message: str):
        message = re.sub(r"^argument ([^:]+): ", lambda m: m.group(1).split("/")[-1] + ": ", message)
        self.exit(2, f"{self.prog}: {message} (see {self.prog} --help)\n")

    def unrecognized(self, extra: list[str]):
        """Unknown arguments, reported by this (sub)command's parser, with the closest flag it knows."""
        known = [o for a in self._actions for o in a.option_strings if o.startswith("--")]
        hints = []
        for arg in extra:
            close = difflib.get_close_matches(arg.split("=")[0], known, n=1) if arg.startswith("--") else []
            if close:
                hints.append(f"did you mean {close[0]}?")
        self.error(f"unrecognized arguments: {' '.join(extra)}" + (f" ({'; '.join(hints)})" if hints else ""))


def command_module(name: str):
    return importlib.import_module(f"antiphon.commands.{name.replace('-', '_')}")


def build_parser(commands=None) -> argparse.ArgumentParser:
    """The whole parser; with `commands`, only those subcommands get their arguments (and their modules
    imported): `antiphon live ...` never imports what `train` needs."""
    parser = Parser(prog="antiphon", description="A live AI duet partner over MIDI.", formatter_class=HelpFormatter)
    parser.add_argument("--version", action="version", version=f"antiphon {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND", parser_class=Parser)
    for name, help_text in COMMANDS.items():
        p = sub.add_parser(name, help=help_text, description=help_text, formatter_class=HelpFormatter)
        if commands is None or name in commands:
            mod = command_module(name)
            mod.add_arguments(p)
            p.set_defaults(_module=mod, _parser=p)
    return parser


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    first = next((a for a in argv if not a.startswith("-")), None)
    parser = build_parser([first] if first in COMMANDS else [])
    args, extra = parser.parse_known_args(argv)
    if extra:  # reported by the subcommand's own parser, so its usage is the one shown
        args._parser.unrecognized(extra)
    args._argv = argv
    try:
        return int(args._module.run(args) or 0)
    except KeyboardInterrupt:
        return 130
    except Exception as exc:  # noqa: BLE001 - the one rule: one line, non-zero exit
        if os.environ.get("ANTIPHON_DEBUG"):
            raise
        expected = isinstance(exc, (ValueError, OSError, RuntimeError))
        text = one_line(exc) if expected else f"internal error, {type(exc).__name__}: {one_line(exc)} " \
                                                "(ANTIPHON_DEBUG=1 shows where)"
        print(f"antiphon {args.command}: {text}", file=sys.stderr)
        return 1


def one_line(exc: BaseException) -> str:
    text = " ".join(str(exc).split()) or type(exc).__name__
    return text if len(text) <= 400 else text[:397] + "..."


if __name__ == "__main__":
    sys.exit(main())
