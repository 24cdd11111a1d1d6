"""MIDI ports over python-rtmidi: virtual "Antiphon In" / "Antiphon Out", or existing ports by name.

    inp = open_input("auto")          # polled: inp.poll() -> [(message bytes, seconds since the previous one)]
    out = open_output("auto")
    out.send_message(b"\\x90\\x3c\\x64")

With no name, a virtual port is created under the client name "Antiphon" (ALSA, JACK, CoreMIDI).
With a name (the Windows / loopMIDI way), the first existing port whose name contains it
(case-insensitive) is opened; our own ports are never candidates, so our output can never be wired
straight back into our input.

No Python runs in rtmidi's input thread (for JACK that is JACK's process thread, and python-rtmidi
takes the GIL for every callback): the input is never given a callback. rtmidi queues each message
with its delta time, taken from the driver (JACK's clock in its process callback, the ALSA queue's
timestamps), and a thread of ours polls the queue (plugin/polled_io.py). Clock (0xF8) and transport
messages are let through; active sensing and sysex are ignored by rtmidi. Malformed messages are
counted and dropped.

Every rtmidi object is a client of its own: on JACK the output shows up under "Antiphon-01". Antiphon's
own JACK client (plugin/jack_native.py) has both ports under one "Antiphon" and is used instead
wherever it can be built; this module remains the way for ALSA and CoreMIDI, and for JACK without a C
compiler. JACK ports are listed through the system's libjack (plugin/jack_lib.py), which also reaches
PipeWire's JACK.
"""
from __future__ import annotations

import os
import shutil
import subprocess
import sys
import threading
from dataclasses import dataclass, field
import rtmidi

CLIENT_NAME = "Antiphon"
IN_PORT_NAME = "Antiphon In"
OUT_PORT_NAME = "Antiphon Out"
BACKENDS = ("alsa", "jack", "coremidi")

_APIS = {
    "alsa": getattr(rtmidi, "API_LINUX_ALSA", None),
    "jack": getattr(rtmidi, "API_UNIX_JACK", None),
    "coremidi": getattr(rtmidi, "API_MACOSX_CORE", None),
    "winmm": getattr(rtmidi, "API_WINDOWS_MM", None),
}

# full names of the ports this process created (backend -> names), for the feedback guard
_own_ports: dict[str, set[str]] = {}
_own_lock = threading.Lock()

# data bytes that follow each status byte (None: variable, sysex)
_LENGTHS = {0x80: 2, 0x90: 2, 0xA0: 2, 0xB0: 2, 0xC0: 1, 0xD0: 1, 0xE0: 2}
_SYSTEM_LENGTHS = {0xF1: 1, 0xF2: 2, 0xF3: 1, 0xF6: 0, 0xF8: 0, 0xFA: 0, 0xFB: 0, 0xFC: 0, 0xFE: 0, 0xFF: 0}


def message_ok(data: bytes) -> bool:
    """True for a complete, well-formed MIDI message (channel, system common/realtime or sysex)."""
    if not data or data[0] < 0x80:
        return False
    status = data[0]
    if status == 0xF0:
        return data[-1] == 0xF7 and all(b < 0x80 for b in data[1:-1])
    n = _LENGTHS.get(status & 0xF0) if status < 0xF0 else _SYSTEM_LENGTHS.get(status)
    if n is None:
        return False
    return len(data) == 1 + n and all(b < 0x80 for b in data[1:])


def _api_compiled(backend: str) -> bool:
    api = _APIS.get(backend)
    return api is not None and api in rtmidi.get_compiled_api()


def jack_running() -> bool:
    """Is a JACK server reachable (the one JACK_DEFAULT_SERVER names, or 'default')?

    Probed through the system's libjack (JACK2's, then PipeWire's; never starting a server, its
    complaints kept off stderr); without one, with `jack_lsp`, then with a guarded rtmidi client."""
    from . import jack_lib

    if jack_lib.any_library() is not None:
        return jack_lib.find_server() is not None
    if not _api_compiled("jack"):
        return False
    lsp = shutil.which("jack_lsp")
    if lsp:
        env = dict(os.environ, JACK_NO_START_SERVER="1")
        try:
            r = subprocess.run([lsp], env=env, capture_output=True, timeout=5)
        except (OSError, subprocess.TimeoutExpired):
            return False
        return r.returncode == 0
    try:
        probe = rtmidi.MidiOut(_APIS["jack"], name=CLIENT_NAME + " probe")
    except rtmidi.RtMidiError:
        return False
    probe.delete()
    return True


def available_backends() -> list[str]:
    """Backends that can open ports here, in the order 'auto' tries them."""
    found = []
    if _api_compiled("alsa") and os.path.exists("/dev/snd/seq"):
        found.append("alsa")
    if _api_compiled("coremidi") and sys.platform == "darwin":
        found.append("coremidi")
    if _api_compiled("winmm") and sys.platform.startswith("win"):
        found.append("winmm")  # existing ports only (loopMIDI): opening one without --in-port/--out-port says so
    if jack_running():
        found.append("jack")
    return found


def no_backend_message() -> str:
    if sys.platform.startswith("win"):
        return ("Windows has no virtual MIDI ports: install loopMIDI (or Windows MIDI Services), create two "
                "ports and pass them with --in-port NAME --out-port NAME")
    hints = []
    if sys.platform.startswith("linux"):
        if not os.path.exists("/dev/snd/seq"):
            hints.append("ALSA sequencer: /dev/snd/seq is missing (run 'sudo modprobe snd-seq'; in a container "
                         "pass --device /dev/snd)")
        else:
            hints.append("ALSA: python-rtmidi was built without ALSA support")
    hints.append("JACK: no server reachable (start one, e.g. 'jackd -d alsa' or 'jackd -d dummy', or set "
                 "JACK_DEFAULT_SERVER)" if _api_compiled("jack") else "JACK: python-rtmidi was built without JACK")
    return "no MIDI backend available. " + "; ".join(hints)


def resolve_backend(backend: str = "auto") -> str:
    backend = (backend or "auto").lower()
    if backend == "auto":
        found = available_backends()
        if not found:
            raise ValueError(no_backend_message())
        return found[0]
    if backend not in BACKENDS and backend != "winmm":
        raise ValueError(f"unknown MIDI backend {backend!r}: choose alsa, jack, coremidi or auto")
    if not _api_compiled(backend):
        raise ValueError(f"python-rtmidi here has no {backend} support (compiled: "
                         f"{', '.join(rtmidi.get_api_name(a) for a in rtmidi.get_compiled_api())})")
    return backend


def _make(kind, backend: str, client: str, **kw):
    from contextlib import nullcontext

    from . import jack_lib

    try:
        with jack_lib.quiet_stderr() if backend == "jack" else nullcontext():  # libjack's own complaints
            return kind(_APIS[backend], name=client, **kw)
    except rtmidi.RtMidiError as exc:
        if backend == "jack":
            if jack_lib.find_server() is not None:
                raise ValueError(jack_lib.pipewire_hint()) from None
            raise ValueError(f"no JACK server reachable (JACK_DEFAULT_SERVER={jack_lib.server_name()}): start "
                             f"jackd, or PipeWire with pipewire-jack") from None
        if backend == "alsa":
            raise ValueError(f"cannot open the ALSA sequencer ({exc}); 'sudo modprobe snd-seq' or use --backend jack") from None
        raise ValueError(f"cannot open {backend} MIDI: {exc}") from None


def _register(backend: str, full_name: str) -> None:
    with _own_lock:
        _own_ports.setdefault(backend, set()).add(full_name)


def _unregister(backend: str, full_name: str) -> None:
    with _own_lock:
        _own_ports.get(backend, set()).discard(full_name)


def _is_own(backend: str, port_name: str) -> bool:
    with _own_lock:
        own = set(_own_ports.get(backend, ()))
    return any(port_name == o or port_name.startswith(o) or o in port_name for o in own)


def _find_port(names: list[str], wanted: str, backend: str, direction: str) -> int:
    wanted_l = wanted.lower()
    candidates = [(i, n) for i, n in enumerate(names) if wanted_l in n.lower() and not _is_own(backend, n)]
    exact = [(i, n) for i, n in candidates if n.lower() == wanted_l]
    if exact or candidates:
        return (exact or candidates)[0][0]
    listed = ", ".join(repr(n) for n in names if not _is_own(backend, n)) or "none"
    raise ValueError(f"no {backend} MIDI {direction} port matching {wanted!r}; available: {listed}")


def _own_full_name(obj, backend: str, port_name: str, other_names: list[str]) -> str:
    """The name other clients see our new virtual port under (best effort)."""
    if backend == "jack":
        # JACK lists it as 'client:port'; the client may have been renamed 'Antiphon-01'
        try:
            import subprocess as _sp

            out = _sp.run(["jack_lsp"], capture_output=True, text=True, timeout=5).stdout.split("\n")
            mine = [p for p in out if p.endswith(":" + port_name) and p not in other_names]
            if mine:
                return mine[-1]
        except (OSError, subprocess.TimeoutExpired):
            pass
    return port_name


class _ClosesOnExit:
    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


@dataclass
class InputPort(_ClosesOnExit):
    """An open MIDI input, polled: `poll()` drains rtmidi's own queue (never a callback)."""

    backend: str
    name: str  # our virtual port's name, or the existing port we connected to
    virtual: bool
    _midi: object = field(repr=False)
    received: int = 0
    malformed: int = 0

    def poll(self) -> list[tuple[bytes, float]]:
        """[(message, seconds since the previous message as the driver stamped them)] queued so far."""
        m = self._midi
        out: list[tuple[bytes, float]] = []
        if m is None:
            return out
        delta_carry = 0.0
        while True:
            event = m.get_message()
            if event is None:
                return out
            try:
                msg, delta = bytes(event[0]), float(event[1])
            except Exception:
                self.malformed += 1
                continue
            delta_carry += delta
            if not message_ok(msg):
                self.malformed += 1
                continue
            self.received += 1
            out.append((msg, delta_carry))
            delta_carry = 0.0

    def close(self) -> None:
        m = self._midi
        if m is None:
            return
        self._midi = None
        m.close_port()
        m.delete()
        _unregister(self.backend, self.name)


@dataclass
class OutputPort(_ClosesOnExit):
    backend: str
    name: str
    virtual: bool
    _midi: object = field(repr=False)
    sent: int = 0
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def send_message(self, msg: bytes) -> None:
        with self._lock:
            m = self._midi
            if m is None:
                raise OSError(f"MIDI output {self.name!r} is closed")
            m.send_message(msg)
            self.sent += 1

    __call__ = send_message

    def close(self) -> None:
        with self._lock:
            m, self._midi = self._midi, None
        if m is None:
            return
        m.close_port()
        m.delete()
        _unregister(self.backend, self.name)


def _open(midi, backend: str, name: str | None, port_name: str, direction: str) -> tuple[str, bool]:
    """Opens `midi` as our virtual port (name None) or on the existing port whose name contains `name`;
    returns (full port name, virtual). Deletes `midi` if that fails."""
    try:
        if name is None:
            if backend == "winmm":
                raise ValueError(no_backend_message())
            before = _list_names(backend, "out" if direction == "input" else "in")
            midi.open_virtual_port(port_name)
            return _own_full_name(midi, backend, port_name, before), True
        idx = _find_port(midi.get_ports(), name, backend, direction)
        full = midi.get_ports()[idx]
        midi.open_port(idx, port_name)
        return full, False
    except Exception:
        midi.delete()
        raise


# rtmidi's input queue: at 10,000 messages a second it holds 1.6 s of a thread that could not poll
INPUT_QUEUE = 16384


def open_input(backend: str = "auto", name: str | None = None,
               client_name: str = CLIENT_NAME, port_name: str = IN_PORT_NAME) -> InputPort:
    """Virtual 'Antiphon In' (name None) or the existing input whose name contains `name`; polled."""
    backend = resolve_backend(backend)
    midi = _make(rtmidi.MidiIn, backend, client_name, queue_size_limit=INPUT_QUEUE)
    midi.ignore_types(sysex=True, timing=False, active_sense=True)
    full, virtual = _open(midi, backend, name, port_name, "input")
    port = InputPort(backend, full, virtual, midi)
    if virtual:
        _register(backend, full)
    return port


def open_output(backend: str = "auto", name: str | None = None,
                client_name: str = CLIENT_NAME, port_name: str = OUT_PORT_NAME) -> OutputPort:
    """Virtual 'Antiphon Out' (name None) or the existing output whose name contains `name`."""
    backend = resolve_backend(backend)
    midi = _make(rtmidi.MidiOut, backend, client_name)
    full, virtual = _open(midi, backend, name, port_name, "output")
    port = OutputPort(backend, full, virtual, midi)
    if virtual:
        _register(backend, full)
    return port


def _list_names(backend: str, direction: str) -> list[str]:
    """Port names other clients offer: direction 'in' = ports we could read from (their outputs)."""
    if backend == "jack":
        names = jack_port_names("out" if direction == "in" else "in")
        if names is not None:
            return names
    kind = rtmidi.MidiIn if direction == "in" else rtmidi.MidiOut
    try:
        m = kind(_APIS[backend], name=CLIENT_NAME + " list")
    except rtmidi.RtMidiError:
        return []
    try:
        return list(m.get_ports())
    finally:
        m.delete()


def jack_port_names(direction: str) -> list[str] | None:
    """JACK MIDI ports through the system's libjack ('out': ports that send); None without a server."""
    from . import jack_lib

    lib = jack_lib.find_server()
    if lib is None:
        return None
    client = lib.open_client(CLIENT_NAME + " list")
    if not client:
        return None
    try:
        return lib.ports(client, direction)
    finally:
        lib.close_client(client)


def find_port_name(names: list[str], wanted: str, backend: str, direction: str, exclude_prefix: str = "") -> str:
    """The existing port (full name) matching `wanted` as open_input/open_output match it; our own
    ports (and, with `exclude_prefix`, every port of our client) are never candidates."""
    names = [n for n in names if not (exclude_prefix and n.startswith(exclude_prefix))]
    return names[_find_port(names, wanted, backend, direction)]


def list_ports(backends: list[str] | None = None) -> dict[str, dict[str, list[str]]]:
    """{backend: {"inputs": [...], "outputs": [...]}} for the backends that work here.

    'inputs' are ports Antiphon can read from (other clients' outputs); 'outputs' are ports it
    can send to."""
    result = {}
    for b in backends or available_backends():
        if not _api_compiled(b):
            continue
        result[b] = {"inputs": _list_names(b, "in"), "outputs": _list_names(b, "out")}
    return result


class JackConnectionWatch:
    """Tells when a JACK port gains a connection (a synth patched in again after a disconnect).

    A note-off sent while our output was disconnected never reaches the synth, which then holds that
    note for good; the sender answers a new connection with the note-offs it may have missed. JACK only;
    `changed()` is polled (every ~0.2 s by the sender process) through libjack directly, with a client
    of its own that has no ports and is never activated. Any failure disables the watch (None)."""

    def __init__(self, client, port_name: str, lib):
        self._client, self._port_name, self._lib = client, port_name, lib
        self._known = self.connections()

    @classmethod
    def open(cls, port_name: str) -> "JackConnectionWatch | None":
        from . import jack_lib

        try:
            lib = jack_lib.find_server()
            client = lib.open_client("Antiphon watch") if lib is not None else None
            if not client:
                return None
            if not lib.lib.jack_port_by_name(client, port_name.encode()):
                lib.close_client(client)
                return None
            return cls(client, port_name, lib)
        except (OSError, AttributeError):
            return None

    def connections(self) -> set[str]:
        return self._lib.connections(self._client, self._port_name)

    def changed(self) -> bool:
        """True when a connection appeared since the last call."""
        now = self.connections()
        new = bool(now - self._known)
        self._known = now
        return new

    def close(self) -> None:
        if self._client:
            self._lib.close_client(self._client)
            self._client = None
