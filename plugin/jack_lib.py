"""The system's libjack, found and loaded with ctypes: JACK2's, or PipeWire's JACK.

python-rtmidi's wheel carries a libjack of its own, which cannot reach PipeWire's JACK (its name is not
libjack.so.0, so neither `pw-jack` nor ld.so's configuration redirects it). Antiphon's own JACK client
(plugin/jack_native.py), its server probe and its port listing go through the libjack the system
provides instead: `libjack.so.0` as the dynamic loader finds it (so `pw-jack` and an ld.so.conf that
points at PipeWire both work), and, when that library reaches no server, PipeWire's copy in its usual
place. Nothing here runs in a realtime thread.
"""
from __future__ import annotations

import ctypes
import glob
import os
import time
from contextlib import contextmanager
from functools import lru_cache

NO_START_SERVER = 0x01
PORT_IS_INPUT = 0x1
PORT_IS_OUTPUT = 0x2
MIDI_TYPE = b"8 bit raw midi"

# PipeWire's libjack where distributions put it (Debian/Ubuntu multiarch, Fedora/Arch lib64 and lib)
PIPEWIRE_LIBJACK = ("/usr/lib/*/pipewire-0.3/jack/libjack.so.0", "/usr/lib64/pipewire-0.3/jack/libjack.so.0",
                    "/usr/lib/pipewire-0.3/jack/libjack.so.0")


def candidates() -> list[str]:
    """Library names to try, in order: the loader's libjack.so.0, then PipeWire's."""
    names = ["libjack.so.0"]
    for pattern in PIPEWIRE_LIBJACK:
        names += sorted(glob.glob(pattern))
    return names


def _declare(lib) -> None:
    vp, cp, u32, u64 = ctypes.c_void_p, ctypes.c_char_p, ctypes.c_uint32, ctypes.c_uint64
    lib.jack_client_open.restype = vp
    lib.jack_client_open.argtypes = [cp, ctypes.c_int, ctypes.POINTER(ctypes.c_int)]
    lib.jack_client_close.argtypes = [vp]
    lib.jack_get_ports.restype = ctypes.POINTER(cp)
    lib.jack_get_ports.argtypes = [vp, cp, cp, ctypes.c_ulong]
    lib.jack_free.argtypes = [vp]
    lib.jack_get_time.restype = u64
    lib.jack_port_by_name.restype = vp
    lib.jack_port_by_name.argtypes = [vp, cp]
    lib.jack_port_get_all_connections.restype = ctypes.POINTER(cp)
    lib.jack_port_get_all_connections.argtypes = [vp, vp]
    lib.jack_connect.argtypes = [vp, cp, cp]
    lib.jack_get_sample_rate.restype = u32
    lib.jack_get_sample_rate.argtypes = [vp]
    lib.jack_get_buffer_size.restype = u32
    lib.jack_get_buffer_size.argtypes = [vp]


class Library:
    """One loaded libjack (`path` as given to the loader) and a way to open a client on it."""

    def __init__(self, path: str):
        self.path = path
        self.lib = ctypes.CDLL(path)
        _declare(self.lib)

    def open_client(self, name: str) -> int | None:
        """A client that never starts a server; None when no server answers."""
        status = ctypes.c_int(0)
        client = self.lib.jack_client_open(name.encode(), NO_START_SERVER, ctypes.byref(status))
        return client or None

    def close_client(self, client: int) -> None:
        self.lib.jack_client_close(client)

    def ports(self, client: int, direction: str, type_pattern: bytes = MIDI_TYPE) -> list[str]:
        """MIDI ports of every client: direction 'out' = ports that send (we can read from them)."""
        flags = PORT_IS_OUTPUT if direction == "out" else PORT_IS_INPUT
        arr = self.lib.jack_get_ports(client, None, type_pattern, flags)
        return self._strings(arr)

    def connections(self, client: int, port_name: str) -> set[str]:
        port = self.lib.jack_port_by_name(client, port_name.encode())
        if not port:
            return set()
        return set(self._strings(self.lib.jack_port_get_all_connections(client, port)))

    def connect(self, client: int, src: str, dst: str) -> int:
        return self.lib.jack_connect(client, src.encode(), dst.encode())

    def _strings(self, arr) -> list[str]:
        names: list[str] = []
        if not arr:
            return names
        i = 0
        while arr[i]:
            names.append(arr[i].decode(errors="replace"))
            i += 1
        self.lib.jack_free(ctypes.cast(arr, ctypes.c_void_p))
        return names


def _load(path: str) -> Library | None:
    try:
        return Library(path)
    except (OSError, AttributeError):
        return None


@lru_cache(maxsize=None)
def _loaded(path: str) -> Library | None:
    return _load(path)


@contextmanager
def quiet_stderr():
    """libjack prints its failures to stderr ("Cannot connect to server socket..."); a probe that is
    allowed to fail keeps them off the user's terminal (for the few milliseconds it takes)."""
    try:
        saved = os.dup(2)
    except OSError:
        yield
        return
    try:
        with open(os.devnull, "w") as null:
            os.dup2(null.fileno(), 2)
            yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)


def find_server() -> Library | None:
    """The first libjack that reaches a running server (JACK_DEFAULT_SERVER honoured), or None."""
    for path in candidates():
        lib = _loaded(path)
        if lib is None:
            continue
        with quiet_stderr():
            client = lib.open_client("Antiphon probe")
        if client:
            lib.close_client(client)
            return lib
    return None


def any_library() -> Library | None:
    """A loadable libjack, server or not (for messages)."""
    for path in candidates():
        lib = _loaded(path)
        if lib is not None:
            return lib
    return None


def clock_offset(jack_time_us, samples: int = 5) -> float:
    """perf_counter() seconds minus JACK's clock (jack_get_time(), microseconds) in seconds.

    JACK2 keeps time on CLOCK_MONOTONIC_RAW, perf_counter() on CLOCK_MONOTONIC: they differ by a
    constant plus the kernel's frequency corrections, so the offset is measured (the tightest of a
    few bracketed readings) and re-measured from time to time by whoever converts."""
    best, width = 0.0, float("inf")
    for _ in range(samples):
        a = time.perf_counter()
        j = jack_time_us()
        b = time.perf_counter()
        if b - a < width:
            width, best = b - a, (a + b) / 2 - j * 1e-6
    return best


def pipewire_hint() -> str:
    """What to do when python-rtmidi cannot reach a server the system's libjack reaches (PipeWire's JACK)."""
    found = [p for pat in PIPEWIRE_LIBJACK for p in glob.glob(pat)]
    preload = found[0] if found else "PipeWire's libjack.so.0"
    return (f"python-rtmidi's bundled libjack cannot reach PipeWire's JACK: install a C compiler (gcc) so that "
            f"Antiphon builds its own JACK client, or run it with LD_PRELOAD={preload}")


def server_name() -> str:
    return os.environ.get("JACK_DEFAULT_SERVER", "default")
