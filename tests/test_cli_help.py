"""Help that teaches: every flag of every command has a help line that shows its default, names and
defaults agree across commands, and parsing never needs torch (a typo or --help answers at once)."""
from __future__ import annotations

import argparse
import subprocess
import sys

import pytest

from antiphon import arguments
from antiphon.cli import COMMANDS, HelpFormatter, build_parser


def subparsers() -> dict[str, argparse.ArgumentParser]:
    parser = build_parser()
    sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    return dict(sub.choices)


def flags(p: argparse.ArgumentParser) -> list[argparse.Action]:
    return [a for a in p._actions if not isinstance(a, (argparse._HelpAction, argparse._VersionAction))]


def test_every_flag_of_every_command_has_a_help_line_that_shows_its_default():
    parsers = subparsers()
    assert set(parsers) == set(COMMANDS)
    missing, no_default = [], []
    for name, p in parsers.items():
        assert flags(p), f"{name} has no arguments: its module was not loaded"
        formatter = HelpFormatter(prog=p.prog)
        for action in flags(p):
            label = f"{name} {'/'.join(action.option_strings) or action.dest}"
            if not action.help or action.help == argparse.SUPPRESS or len(action.help.split()) < 2:
                missing.append(label)
                continue
            shown = formatter._get_help_string(action) % {"default": action.default}
            unset = action.default is None or action.default is False or action.default == []
            shows_default = unset or f"(default: {action.default})" in shown or "default" in action.help
            if action.option_strings and not shows_default:
                no_default.append(label)
    assert not missing, "flags without a help line: " + ", ".join(missing)
    assert not no_default, "flags whose help hides the default: " + ", ".join(no_default)


def test_the_rendered_help_shows_defaults():
    text = subparsers()["live"].format_help()
    assert "(default: 1.1)" in text and "(default: 120.0)" in text and "(default: call_response)" in text
    train = subparsers()["train"].format_help()
    assert "(default: auto)" in train and "passes over the training split (auto: about 600 steps)" in train


def test_one_temperature_default_and_one_meaning_of_bars():
    from antiphon.engine.session import SessionParams

    parsers = subparsers()
    defaults = {name: parsers[name].get_default("temperature") for name in ("live", "demo", "generate")}
    assert set(defaults.values()) == {arguments.DEFAULT_TEMPERATURE} == {SessionParams().temperature}, defaults
    assert {parsers[n].get_default("top_p") for n in ("live", "generate")} == {SessionParams().top_p}
    for name, value in arguments.SESSION_DEFAULTS.items():  # planned answers and accompaniment
        assert parsers["live"].get_default(name) == value == getattr(SessionParams(), name), name
    # --bars is what Antiphon generates (generate); the demo's call length is --call-bars
    bars = {a.dest: a for a in flags(parsers["demo"])}
    assert "call_bars" in bars and "deprecated" in bars["deprecated_bars"].help
    assert "generate" in next(a.help for a in flags(parsers["generate"]) if a.dest == "bars")


@pytest.mark.parametrize("command", ["live", "generate", "demo", "prepare", "eval", "ports"])
def test_parsing_a_command_does_not_import_torch(command):
    probe = ("import sys; from antiphon.cli import build_parser; build_parser([%r]); "
             "sys.exit(int('torch' in sys.modules))" % command)
    assert subprocess.run([sys.executable, "-c", probe], timeout=60).returncode == 0
