"""Shared fixtures. `jack_server`: a private JACK server (dummy driver) for tests marked `jack`."""
from __future__ import annotations

import os

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")  # the panel runs offscreen in tests (pytest-qt, `antiphon live`)

import pytest

from tests.jack import JackServer


@pytest.fixture(scope="module")
def jack_server():
    """A fresh JACK server per test module, also made the default for this process
    (JACK_DEFAULT_SERVER, which python-rtmidi's JACK backend honours).

    Period 64 frames (1.33 ms) unless ANTIPHON_JACK_PERIOD says otherwise: on a loaded machine the
    --no-realtime dummy driver cannot keep wall time at 64 (we measured its sample clock 10-20 %
    slow while other jobs ran); 256 keeps up."""
    server = JackServer(period=int(os.environ.get("ANTIPHON_JACK_PERIOD", "64"))).start()
    saved = {k: os.environ.get(k) for k in ("JACK_DEFAULT_SERVER", "JACK_NO_START_SERVER")}
    os.environ["JACK_DEFAULT_SERVER"] = server.name
    os.environ["JACK_NO_START_SERVER"] = "1"
    try:
        yield server
    finally:
        server.stop()
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
