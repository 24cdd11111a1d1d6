"""Argument types and shared defaults for every command: out-of-range values are refused while parsing,
with the range that is accepted, never clamped later.

    p.add_argument("--temperature", type=TEMPERATURE_TYPE, default=DEFAULT_TEMPERATURE, help=...)
    -> `antiphon live: --temperature: must be within 0.05..3, got 100 (see antiphon live --help)`

Nothing here imports torch: building a parser stays fast (`antiphon --version`, `--help`, a typo).
"""
from __future__ import annotations

import argparse
import math
import os

# One default sampling temperature for live, demo and generate (the engine's SessionParams default;
# tests/test_cli_help.py checks that they agree).
DEFAULT_TEMPERATURE = 1.1
DEFAULT_TOP_P = 0.95
# The session's defaults for planned answers and accompaniment (SessionParams; tests/test_cli_help.py checks)
SESSION_DEFAULTS = {"candidates": 16, "end_on": "any", "register": "free", "voicing": "below", "comp": "free",
                    "kinship": 0.0, "polyphony": "call"}
TEMPERATURE_RANGE = (0.05, 3.0)
TOP_P_RANGE = (0.05, 1.0)
BPM_RANGE = (20.0, 400.0)
BARS_RANGE = (1, 64)


def _number(text: str, kind):
    try:
        value = kind(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected {'an integer' if kind is int else 'a number'}, got {text!r}")
    if kind is float and not math.isfinite(value):
        raise argparse.ArgumentTypeError(f"expected a finite number, got {text!r}")
    return value


def _show(x) -> str:
    return f"{x:g}" if isinstance(x, float) else str(x)


def int_in(lo: int, hi: int | None = None):
    """An integer within lo..hi (hi None: no upper limit)."""

    def parse(text: str) -> int:
        value = _number(text, int)
        if value < lo or (hi is not None and value > hi):
            raise argparse.ArgumentTypeError(
                f"must be within {lo}..{hi}, got {value}" if hi is not None else f"must be at least {lo}, got {value}")
        return value

    parse.__name__ = "integer"
    return parse


def float_in(lo: float, hi: float | None = None, lo_open: bool = False, hi_open: bool = False):
    """A number within lo..hi; an open end excludes the bound itself (e.g. a learning rate above 0)."""

    def parse(text: str) -> float:
        value = _number(text, float)
        low_bad = value <= lo if lo_open else value < lo
        high_bad = hi is not None and (value >= hi if hi_open else value > hi)
        if low_bad or high_bad:
            if hi is None:
                raise argparse.ArgumentTypeError(f"must be {'above' if lo_open else 'at least'} {_show(lo)}, "
                                                 f"got {_show(value)}")
            span = f"{_show(lo)}..{_show(hi)}"
            ends = " (" + ", ".join(x for x in (f"{_show(lo)} excluded" if lo_open else "",
                                                 f"{_show(hi)} excluded" if hi_open else "") if x) + ")"
            raise argparse.ArgumentTypeError(f"must be within {span}{ends if lo_open or hi_open else ''}, "
                                             f"got {_show(value)}")
        return value

    parse.__name__ = "number"
    return parse


def temperature(text: str) -> float:
    return float_in(*TEMPERATURE_RANGE)(text)


def top_p(text: str) -> float:
    return float_in(*TOP_P_RANGE)(text)


def bpm(text: str) -> float:
    return float_in(*BPM_RANGE)(text)


def bars(text: str) -> int:
    return int_in(*BARS_RANGE)(text)


def existing_file(text: str) -> str:
    """A path that is a readable file (what it holds is judged by the command that reads it)."""
    path = os.path.expanduser(text)
    if not os.path.exists(path):
        raise argparse.ArgumentTypeError(f"{text}: no such file")
    if not os.path.isfile(path):
        raise argparse.ArgumentTypeError(f"{text}: not a file")
    if not os.access(path, os.R_OK):
        raise argparse.ArgumentTypeError(f"{text}: not readable (permission denied)")
    return path


def writable_file(text: str) -> str:
    """A file to write: its folder must exist (so a run does not fail at its end)."""
    path = os.path.expanduser(text)
    folder = os.path.dirname(os.path.abspath(path))
    if os.path.isdir(path):
        raise argparse.ArgumentTypeError(f"{text}: is a folder, expected a file name")
    if not os.path.isdir(folder):
        raise argparse.ArgumentTypeError(f"{text}: folder {folder} does not exist")
    return path


def meter(text: str) -> str:
    """A meter such as 4/4, 3/4 or 6/8 (the engine's rule: bars up to 8 quarters)."""
    from antiphon.engine.events import Meter

    try:
        Meter.parse(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None
    return text
