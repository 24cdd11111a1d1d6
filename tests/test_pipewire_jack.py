"""The jam (tests/test_live_jack.py) on PipeWire's JACK, the default on current Ubuntu and Fedora: a private,
headless `pipewire` (its shipped config has a dummy driver), quantum 64 at 48 kHz, the JACK tools under its
libjack as `pw-jack` runs them, another process busy. `antiphon live --backend jack` runs as a user would
start it on a PipeWire desktop: no pw-jack, nothing preloaded (it finds PipeWire's libjack itself)."""
from __future__ import annotations

import pytest

from tests.jack import PipeWireServer
from tests.test_live_jack import Case, check_jam, jam

pytestmark = [pytest.mark.jack, pytest.mark.slow]


def test_jam_on_pipewire_jack(tmp_path):
    with PipeWireServer() as pw:
        r = jam(pw, Case(140.0), tmp_path)
    check_jam(r, "PipeWire")
