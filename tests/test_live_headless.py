"""`antiphon live` where no window can open (ssh, a container, CI): it never aborts in Qt. Without a
display it runs headless and says so in one line; without a MIDI backend it prints the ports module's
one actionable line and exits non-zero. Real processes, the display variables removed."""
from __future__ import annotations

import os
import subprocess
import sys
import time
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


def _read_until(fd: int, needle: bytes, timeout: float) -> bytes:
    """What a pseudo-terminal's program wrote, read until `needle` appears (or `timeout`)."""
    import select

    out, deadline = b"", time.monotonic() + timeout
    while needle not in out and time.monotonic() < deadline:
        if select.select([fd], [], [], 0.1)[0]:
            try:
                out += os.read(fd, 65536)
            except OSError:
                break
    return out


@pytest.mark.jack
@pytest.mark.slow
def test_headless_live_says_what_to_connect_names_a_second_instance_and_ends_when_the_server_dies(tmp_path):
    """On a terminal: the start lines, the next step (the exact jack_connect), one status line rewritten in place.
    A second instance says its name. The JACK server killed: both end within 2 s, one line, exit 1."""
    import pty
    import signal as sig

    from tests.jack import JackServer

    server = JackServer().start()
    env = headless_env(tmp_path, JACK_DEFAULT_SERVER=server.name, JACK_NO_START_SERVER="1")
    master, slave = pty.openpty()
    procs = []
    try:
        first = subprocess.Popen([str(EXE), "live", "--backend", "jack", "--headless"], stdout=slave,
                                 stderr=subprocess.PIPE, stdin=subprocess.DEVNULL, env=env, cwd=tmp_path, text=True)
        procs.append(first)
        os.close(slave)
        seen = _read_until(master, b"BPM (own clock)", 90)
        second = subprocess.Popen([str(EXE), "live", "--backend", "jack", "--headless"], stdout=subprocess.PIPE,
                                  stderr=subprocess.PIPE, stdin=subprocess.DEVNULL, env=env, cwd=tmp_path, text=True)
        procs.append(second)
        lines2 = [second.stdout.readline() for _ in range(3)]
        time.sleep(1.0)
        seen += _read_until(master, b"\x00", 0.5)
        text = seen.decode(errors="replace")
        lines = text.split("\r\n")
        assert lines[0].startswith("Antiphon live: style default") and "(jack)" in lines[0], text[:500]
        assert lines[1].startswith("next: ") and 'jack_connect "YOUR-DAW:midi_out" "Antiphon:Antiphon In"' in lines[1]
        assert "it makes no sound of its own" in lines[1]
        status = lines[2]  # everything after the start lines: one line, rewritten in place
        assert len(lines) == 3 and status.count("\r") >= 5 and "BPM (own clock), bar " in status, text[-500:]
        assert lines2[1] == "another Antiphon is running: this one is Antiphon-01\n", lines2
        assert "Antiphon-01:Antiphon In" in lines2[0] and "Antiphon-01:Antiphon In" in lines2[2]
        killed = time.monotonic()
        os.kill(server.proc.pid, sig.SIGKILL)
        for p in procs:
            p.wait(timeout=30)
        took = time.monotonic() - killed
        errs = [p.stderr.read().strip().splitlines() for p in procs]
        print(f"\nJACK server killed: both instances ended after {took:.2f} s: {errs[0]}")
        assert [p.returncode for p in procs] == [1, 1], errs
        for err in errs:
            assert err == ["antiphon live: the JACK server stopped (it shut Antiphon's client down); stopped"], err
        assert took <= 2.0
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
                p.wait(5)
        os.close(master)
        server.stop()
