"""The JACK rig for the tests (antiphon/jack_rig.py): a tool it cannot find here skips the test, or with
CI=true fails it (CI installs every tool the tests need)."""
import os

import pytest

from antiphon import jack_rig
from antiphon.jack_rig import *  # noqa: F401,F403  (the rig, as the tests use it)
from antiphon.jack_rig import RigUnavailable


def missing_tools(reason: str) -> None:
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail(reason + " -- required when CI=true")
    pytest.skip(reason)


def _skipping(check):
    def checked() -> None:
        try:
            check()
        except RigUnavailable as exc:
            missing_tools(str(exc))
    return checked


require_jackd = _skipping(jack_rig.require_jackd)
require_native = _skipping(jack_rig.require_native)
require_pipewire = _skipping(jack_rig.require_pipewire)
jack_rig.missing_tools = missing_tools  # the rig's own checks (JackServer.start) skip the same way
