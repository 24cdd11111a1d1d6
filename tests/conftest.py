"""Shared fixtures. `jack_server`: a private JACK server (dummy driver) for tests marked `jack`."""
from __future__ import annotations

import os

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")  # the panel runs offscreen in tests (pytest-qt, `antiphon live`)

import pytest

from tests.jack import JackServer, jack_env


@pytest.fixture(scope="module")
def jack_server():
    """A fresh JACK server per test module, also made the default for this process
    (JACK_DEFAULT_SERVER, which python-rtmidi's JACK backend honours).

    Synchronous (jackd -S): an asynchronous server drops a cycle's MIDI for a client that is late (the
    rtmidi callback waits for the GIL), and the tests here send single messages and wait for their
    effect: a CC that binds MIDI learn, a clock's Start and Stop. One passing GUI run logged 210 such
    dropped cycles; one clock run in three lost its Start or its Stop. Period 64 frames (1.33 ms)
    unless ANTIPHON_JACK_PERIOD says otherwise: on a loaded machine the --no-realtime dummy driver
    cannot keep wall time at 64 (we measured its sample clock 10-20 % slow while other jobs ran); 256
    keeps up."""
    server = JackServer(sync=True, period=int(os.environ.get("ANTIPHON_JACK_PERIOD", "64"))).start()
    try:
        with jack_env(server):
            yield server
    finally:
        server.stop()
