"""`antiphon live` with the panel: QApplication, engine, window, clean exits.

    run_panel(config)                         # until the window closes, Ctrl-C or SIGTERM
    run_panel(config, screenshot="p.png")     # render after ~2 s (or after --duration), write PNG, exit
    run_panel(config, duration=30)            # exit after 30 s

Every exit path (window closed, also by the system's Quit; SIGINT, SIGTERM, --duration, --screenshot)
ends in Panel.shutdown(): settings saved, engine.close() (note-offs, CC 123, ports closed).
"""
from __future__ import annotations

import os
import signal
import subprocess
import sys
from dataclasses import replace

SCREENSHOT_AFTER_S = 2.0


_PROBE = "from PyQt6.QtGui import QGuiApplication; QGuiApplication([])"


def display_problem() -> str | None:
    """Why Qt could not open a window here, or None. Qt aborts the whole process (a core dump) when its
    platform plugin cannot start, so where a display is named the check runs Qt in a child process."""
    if os.environ.get("QT_QPA_PLATFORM") or not sys.platform.startswith(("linux", "freebsd", "openbsd")):
        return None  # the user chose a platform (offscreen, vnc...), or macOS/Windows: Qt has its own
    names = [f"{k}={os.environ[k]}" for k in ("WAYLAND_DISPLAY", "DISPLAY") if os.environ.get(k)]
    if not names:
        return "no display (DISPLAY and WAYLAND_DISPLAY are unset)"
    try:
        probe = subprocess.run([sys.executable, "-c", _PROBE], capture_output=True, text=True, timeout=30)
    except (OSError, subprocess.TimeoutExpired) as exc:
        return f"cannot check the display ({type(exc).__name__})"
    if probe.returncode == 0:
        return None
    lines = [ln for ln in probe.stderr.splitlines() if "could not connect" in ln or "cannot open" in ln.lower()]
    detail = f" ({lines[0].strip()})" if lines else ""
    return f"Qt cannot open the display {', '.join(names)}{detail}"


def panel_unavailable(screenshot: str | None = None) -> str | None:
    """Why `antiphon live` must run headless here, or None. A --screenshot run needs no display: it
    draws offscreen instead."""
    problem = display_problem()
    if problem and screenshot:
        os.environ["QT_QPA_PLATFORM"] = "offscreen"
        return None
    return problem


def _platform_for(screenshot: str | None) -> None:
    """Without a display (CI, ssh), a screenshot run renders offscreen."""
    if screenshot and not os.environ.get("QT_QPA_PLATFORM") and not (
            os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY")) and sys.platform.startswith("linux"):
        os.environ["QT_QPA_PLATFORM"] = "offscreen"


def make_app():
    from PyQt6.QtWidgets import QApplication

    from .settings import APPLICATION, ORGANISATION

    app = QApplication.instance() or QApplication(sys.argv[:1])
    app.setOrganizationName(ORGANISATION)
    app.setApplicationName(APPLICATION)
    return app


def run_panel(config, screenshot: str | None = None, duration: float | None = None, engine_factory=None) -> int:
    _platform_for(screenshot)
    from PyQt6.QtCore import QEventLoop, QTimer

    from antiphon.plugin.live import LiveEngine, exit_lines

    from .panel import Panel
    from .settings import load_config

    app = make_app()
    asked = config
    config = load_config(asked)
    factory = engine_factory or (lambda cfg: LiveEngine(cfg))
    try:
        engine = LiveEngine.started(config, factory)
    except Exception as exc:
        ports = dict(backend=asked.backend, in_port=asked.in_port, out_port=asked.out_port)
        if all(getattr(config, k) == v for k, v in ports.items()):
            raise
        # the saved backend or ports are gone (JACK not running, a synth unplugged): use the defaults
        print(f"saved ports unavailable ({exc}); starting on {asked.backend} with virtual ports", file=sys.stderr)
        engine = LiveEngine.started(replace(config, **ports), factory)
    panel = Panel(engine, factory)
    snap = engine.snapshot()
    print(f"Antiphon live: style {engine.style_name}, in '{snap.ports[0]}', out '{snap.ports[1]}' "
          f"({snap.backend}); close the window or Ctrl-C to stop", flush=True)

    # The panel runs in an event loop of its own, ended by the window's close, Ctrl-C, --duration or
    # --screenshot; the application is never told to quit (its Quit would end every event loop started
    # after this one at once: a host's, a test's).
    loop = QEventLoop()
    app.setQuitOnLastWindowClosed(False)
    panel.closed.connect(loop.quit)
    # Qt's event loop runs in C++: a timer hands control back to Python now and then, so that
    # SIGINT/SIGTERM handlers run.
    previous = {sig: signal.signal(sig, lambda *_: loop.quit()) for sig in (signal.SIGINT, signal.SIGTERM)}
    pulse = QTimer()
    pulse.timeout.connect(lambda: None)
    pulse.start(100)
    result = {"rc": 0}

    def grab() -> None:
        panel.refresh()
        if not panel.grab().save(screenshot):
            print(f"could not write screenshot {screenshot}", file=sys.stderr)
            result["rc"] = 1
        else:
            print(f"screenshot: {screenshot}", flush=True)
        loop.quit()

    if screenshot:
        QTimer.singleShot(int(1000 * (duration or SCREENSHOT_AFTER_S)), grab)
    elif duration:
        QTimer.singleShot(int(1000 * duration), loop.quit)
    panel.show()
    try:
        loop.exec()
    finally:
        pulse.stop()
        panel.shutdown()
        panel.close()
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        engine = panel.engine
        if engine.sender is not None:
            print("\n".join(exit_lines(engine)), flush=True)
    return result["rc"]
