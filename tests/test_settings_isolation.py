"""Tests leave the user's machine as they found it: `antiphon live` started by a test (here with the panel,
which saves its settings when it closes) writes its settings under the test's private XDG_CONFIG_HOME, never to
the real ~/.config/Antiphon/Antiphon.conf."""
from __future__ import annotations

import os
import pwd
from pathlib import Path

import pytest

from tests.jack import JackServer, live

pytestmark = [pytest.mark.jack, pytest.mark.slow]


def _state(path: Path):
    """(bytes, mtime) of the file, or None when there is none."""
    try:
        return path.read_bytes(), path.stat().st_mtime_ns
    except FileNotFoundError:
        return None


def test_antiphon_live_leaves_the_real_settings_alone(tmp_path):
    from tests.reliability import tiny_style

    home = Path(pwd.getpwuid(os.getuid()).pw_dir)  # the user's home, whatever the environment says
    real = home / ".config" / "Antiphon" / "Antiphon.conf"
    before = _state(real)
    style = tiny_style(tmp_path / "tiny.style")
    with JackServer() as jack:
        app = live(jack, "--style", str(style), "--duration", "1.5", panel=True)
        assert app.popen.wait(60) == 0, app.output()[-2000:]
        private = Path(jack.env["XDG_CONFIG_HOME"]) / "Antiphon" / "Antiphon.conf"
        wrote = private.exists()
    assert _state(real) == before, f"{real} changed"
    assert wrote, f"the panel saved no settings at {private}: the test would prove nothing"
