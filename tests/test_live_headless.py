"""`antiphon live` where no window can open (ssh, a container, CI): it never aborts in Qt. Without a
display it runs headless and says so in one line; without a MIDI backend it prints the ports module's
one actionable line and exits non-zero. Real processes, the display variables removed."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from antiphon.plugin import ports

EXE = Path(sys.executable).with_name("antiphon")
DISPLAY_VARS = ("DISPLAY", "WAYLAND_DISPLAY", "QT_QPA_PLATFORM")


def headless_env(tmp_path: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in DISPLAY_VARS and k != "ANTIPHON_DEBUG"}
    env.update(XDG_CONFIG_HOME=str(tmp_path / "config"), **extra)
    return env


def test_the_readme_main_command_without_display_or_midi_backend_says_what_to_start(tmp_path, monkeypatch):
    server = f"antiphon-none-{os.getpid()}"  # a JACK server that does not run
    monkeypatch.setenv("JACK_DEFAULT_SERVER", server)
    monkeypatch.setenv("JACK_NO_START_SERVER", "1")
    if ports.available_backends():
        pytest.skip("this machine has a MIDI backend (ALSA sequencer): the JACK test below covers the fallback")
    env = headless_env(tmp_path, JACK_DEFAULT_SERVER=server, JACK_NO_START_SERVER="1")
    r = subprocess.run([str(EXE), "live"], capture_output=True, text=True, timeout=120, env=env, cwd=tmp_path,
                       stdin=subprocess.DEVNULL)
    assert r.returncode == 1, (r.returncode, r.stderr)  # not 134 (Qt's abort) nor a signal
    assert r.stderr.splitlines() == [f"antiphon live: {ports.no_backend_message()}"], r.stderr
    assert "Traceback" not in r.stderr and r.stdout == ""
    assert not (tmp_path / "config").exists()  # nothing was started, so nothing was saved


@pytest.mark.jack
@pytest.mark.slow
@pytest.mark.parametrize("display", [None, ":97"], ids=["no-display", "unreachable-display"])
def test_without_a_usable_display_live_falls_back_to_headless_and_plays(jack_server, tmp_path, display):
    extra = {"DISPLAY": display} if display else {}
    env = headless_env(tmp_path, **extra)
    r = subprocess.run([str(EXE), "live", "--backend", "jack", "--duration", "2"], capture_output=True, text=True,
                       timeout=120, env=env, cwd=tmp_path, stdin=subprocess.DEVNULL)
    assert r.returncode == 0, (r.returncode, r.stdout, r.stderr)
    notice = [ln for ln in r.stderr.splitlines() if ln.startswith("antiphon live:")]
    reason = "no display (DISPLAY and WAYLAND_DISPLAY are unset)" if display is None else \
        "Qt cannot open the display DISPLAY=:97"
    assert len(notice) == 1 and reason in notice[0] and notice[0].endswith("running headless (as with --headless)")
    out = r.stdout.splitlines()
    assert out[0].startswith("Antiphon live: style default") and "(jack)" in out[0]
    assert any("BPM internal playing" in ln for ln in out[1:])  # the headless status line
    assert out[-1].startswith("stopped: ") and "0 notes left sounding" in out[-1]
