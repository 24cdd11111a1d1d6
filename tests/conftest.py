"""Shared fixtures. `jack_server`: a private JACK server (dummy driver) for tests marked `jack`.

Tests leave the user's machine as they found it: this session, and everything it spawns, gets settings,
state and cache folders of its own (XDG_CONFIG_HOME, XDG_STATE_HOME, ANTIPHON_CACHE_DIR under one temp
dir, removed at the end), so no test reads or writes ~/.config/Antiphon or Antiphon's cache."""
from __future__ import annotations

import atexit
import os
import shutil
import tempfile

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")  # the panel runs offscreen in tests (pytest-qt, `antiphon live`)
_PRIVATE = tempfile.mkdtemp(prefix="antiphon-tests-")
for _var, _sub in (("XDG_CONFIG_HOME", "config"), ("XDG_STATE_HOME", "state"), ("ANTIPHON_CACHE_DIR", "cache")):
    os.environ[_var] = os.path.join(_PRIVATE, _sub)
atexit.register(shutil.rmtree, _PRIVATE, True)

import pytest  # noqa: E402

from tests.jack import JackServer, jack_env  # noqa: E402


@pytest.fixture(scope="module")
def jack_server():
    """A fresh JACK server per test module, also made the default for this process
    (JACK_DEFAULT_SERVER, which python-rtmidi's JACK backend honours).

    JACK's default, asynchronous server, as users run it. (It drops a cycle's MIDI for a client that is
    late; Antiphon's own client does its work in C and is never late for Python's sake.) Period 64
    frames (1.33 ms) unless ANTIPHON_JACK_PERIOD says otherwise: on a loaded machine the --no-realtime
    dummy driver cannot keep wall time at 64 (we measured its sample clock 10-20 % slow while other
    jobs ran); 256 keeps up."""
    server = JackServer(period=int(os.environ.get("ANTIPHON_JACK_PERIOD", "64"))).start()
    try:
        with jack_env(server):
            yield server
    finally:
        server.stop()
