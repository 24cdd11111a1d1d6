"""The jam (tests/test_live_jack.py) on PipeWire's JACK, the default on current Ubuntu and Fedora: a private,
headless `pipewire` (its shipped config has a dummy driver), quantum 64 at 48 kHz, the JACK tools under its
libjack as `pw-jack` runs them, another process busy. `antiphon live --backend jack` runs as a user would
start it on a PipeWire desktop: no pw-jack, nothing preloaded (it finds PipeWire's libjack itself)."""
from __future__ import annotations

import pytest

from tests.jack import PipeWireServer
from tests.test_live_jack import SAMPLED, Case, check_jam, jam

pytestmark = [pytest.mark.jack, pytest.mark.slow]


def test_jam_on_pipewire_jack(tmp_path):
    with PipeWireServer() as pw:
        r = jam(pw, Case(140.0), tmp_path, extra_args=SAMPLED)
    check_jam(r, "PipeWire", log_names_late_cycles=False)


def test_without_its_own_client_it_says_what_to_do(tmp_path):
    """Where Antiphon cannot build its JACK client (forced here), python-rtmidi cannot reach PipeWire: one line
    says what to do, and doing it (the preload) works."""
    import os
    import subprocess
    import sys

    from tests.reliability import tiny_style

    style = tiny_style(tmp_path / "tiny.style")
    exe = os.path.join(os.path.dirname(sys.executable), "antiphon")
    cmd = [exe, "live", "--backend", "jack", "--headless", "--style", str(style), "--duration", "1"]
    with PipeWireServer() as pw:
        env = dict(pw.antiphon_env, ANTIPHON_JACK_IO="rtmidi")
        r = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=120)
        preload = subprocess.run(cmd, capture_output=True, text=True, timeout=120,
                                 env=dict(env, LD_PRELOAD=pw.rtmidi_env["LD_PRELOAD"]))
    print(f"\nforced python-rtmidi on PipeWire: exit {r.returncode}, {r.stderr.strip()!r}; with the preload: exit "
          f"{preload.returncode}")
    assert r.returncode == 1 and r.stderr.count("\n") == 1 and "LD_PRELOAD=" in r.stderr
    assert preload.returncode == 0, preload.stderr[-2000:]
