"""Shared fixtures. `jack_server`: a private JACK server (dummy driver) for tests marked `jack`."""
from __future__ import annotations

import os

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")  # the panel runs offscreen in tests (pytest-qt, `antiphon live`)

import pytest

from tests.jack import JackServer, jack_env


def _module_server(sync: bool):
    server = JackServer(sync=sync, period=int(os.environ.get("ANTIPHON_JACK_PERIOD", "64"))).start()
    try:
        with jack_env(server):
            yield server
    finally:
        server.stop()


@pytest.fixture(scope="module")
def jack_server():
    """A fresh JACK server per test module, also made the default for this process
    (JACK_DEFAULT_SERVER, which python-rtmidi's JACK backend honours).

    Period 64 frames (1.33 ms) unless ANTIPHON_JACK_PERIOD says otherwise: on a loaded machine the
    --no-realtime dummy driver cannot keep wall time at 64 (we measured its sample clock 10-20 %
    slow while other jobs ran); 256 keeps up. Asynchronous, as a user's server runs: a client late
    for a cycle loses that cycle's MIDI (see JackServer.sync)."""
    yield from _module_server(sync=False)


@pytest.fixture(scope="module")
def lossless_jack_server():
    """As `jack_server`, but synchronous (jackd -S): no client ever misses a cycle's MIDI, for tests
    that send a single message and wait for its effect."""
    yield from _module_server(sync=True)
