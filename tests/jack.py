"""Test helpers: a private JACK server (dummy driver) and the JACK command-line tools around it.

    with JackServer() as jack:                      # jackd -n antiphon-test-PID-N --no-realtime -d dummy -r 48000 -p 64
        clock = jack.midi_clock(bpm=120)            # jack_midi_clock -b 120 (port jack_midi_clock:mclk_out)
        dump = jack.midi_dump("rec")                # jack_midi_dump -a rec (port rec:input)
        jack.connect(clock.port, "rec:input")
        jack.transport("play")                      # jack_transport, commands on its stdin
        ...
        events = dump.stop()                        # [(frame, bytes), ...]

Every process runs in its own session with JACK_DEFAULT_SERVER set, and is killed by process group
on stop(); the server is stopped last. `require_jackd()` skips when jackd is missing, except with
CI=true, where it fails.
"""
from __future__ import annotations

import itertools
import os
import re
import shutil
import signal
import subprocess
import tempfile
import time
from dataclasses import dataclass, field

import pytest

TOOLS = ("jackd", "jack_wait", "jack_lsp", "jack_connect", "jack_transport", "jack_midi_clock", "jack_midi_dump")
_counter = itertools.count()


def require_jackd() -> None:
    """Skip (or, with CI=true, fail) when jackd and its tools are not installed."""
    missing = [t for t in TOOLS if shutil.which(t) is None]
    if not missing:
        return
    reason = f"JACK tools missing: {', '.join(missing)} (Debian: apt install jackd2 jack-midi-clock)"
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail(reason + " -- required when CI=true")
    pytest.skip(reason)


def _kill_group(proc: subprocess.Popen, sig=signal.SIGTERM, timeout: float = 3.0) -> None:
    if proc.poll() is not None:
        return
    try:
        os.killpg(proc.pid, sig)
    except ProcessLookupError:
        return
    try:
        proc.wait(timeout)
    except subprocess.TimeoutExpired:
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        proc.wait(timeout)


_DUMP_LINE = re.compile(r"^\s*(-?\d+):\s+(.*)$")
_HEX = re.compile(r"^[0-9a-fA-F]{2}$")
_DATA_LEN = {0x80: 2, 0x90: 2, 0xA0: 2, 0xB0: 2, 0xC0: 1, 0xD0: 1, 0xE0: 2, 0xF1: 1, 0xF2: 2, 0xF3: 1}


def parse_midi_dump(text: str) -> list[tuple[int, bytes]]:
    """jack_midi_dump -a lines -> [(frame, message bytes)].

    Realtime messages print as '  53632: f8'; channel messages carry a description after the
    bytes: '  12096: 90 3c 40 note on  (channel  0): pitch  60, velocity  64'."""
    events = []
    for line in text.splitlines():
        m = _DUMP_LINE.match(line)
        if not m:
            continue
        data = []
        for tok in m.group(2).split():
            if not _HEX.match(tok):
                break
            data.append(int(tok, 16))
        if not data or data[0] < 0x80:
            continue
        if data[0] != 0xF0:
            n = _DATA_LEN.get(data[0] & 0xF0 if data[0] < 0xF0 else data[0], 0)
            data = data[: 1 + n]
        events.append((int(m.group(1)), bytes(data)))
    return events


@dataclass
class Proc:
    """A tool running against the private server."""

    popen: subprocess.Popen
    port: str = ""  # its main JACK port, where it has one
    log: str = ""  # file with its stdout/stderr

    def stop(self) -> None:
        _kill_group(self.popen)

    def output(self) -> str:
        with open(self.log, errors="replace") as f:
            return f.read()


@dataclass
class MidiDump(Proc):
    def stop(self) -> list[tuple[int, bytes]]:  # type: ignore[override]
        """Stop jack_midi_dump (SIGINT, so it flushes) and return [(frame, bytes)]."""
        _kill_group(self.popen, signal.SIGINT)
        return parse_midi_dump(self.output())


@dataclass
class JackServer:
    rate: int = 48000
    period: int = 64
    name: str = field(default_factory=lambda: f"antiphon-test-{os.getpid()}-{next(_counter)}")
    proc: subprocess.Popen | None = None
    children: list[Proc] = field(default_factory=list)
    tmp: str = field(default_factory=lambda: tempfile.mkdtemp(prefix="antiphon-jack-"))

    @property
    def env(self) -> dict[str, str]:
        return dict(os.environ, JACK_DEFAULT_SERVER=self.name, JACK_NO_START_SERVER="1")

    def start(self, timeout: float = 10.0) -> "JackServer":
        require_jackd()
        log = open(os.path.join(self.tmp, "jackd.log"), "w")
        self.proc = subprocess.Popen(
            ["jackd", "-n", self.name, "--no-realtime", "-d", "dummy", "-r", str(self.rate), "-p", str(self.period)],
            stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, env=self.env, start_new_session=True)
        log.close()
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"jackd exited with {self.proc.returncode}: {self._log('jackd.log')}")
            r = subprocess.run(["jack_wait", "-s", self.name, "-c"], env=self.env, capture_output=True, text=True)
            if r.returncode == 0 and "not" not in r.stdout:
                return self
            time.sleep(0.05)
        self.stop()
        raise RuntimeError(f"jackd {self.name} not ready after {timeout}s: {self._log('jackd.log')}")

    def _log(self, name: str) -> str:
        try:
            with open(os.path.join(self.tmp, name), errors="replace") as f:
                return f.read()[-2000:]
        except OSError:
            return ""

    def stop(self) -> None:
        for child in reversed(self.children):
            child.popen.poll() is None and _kill_group(child.popen)
        self.children.clear()
        if self.proc is not None:
            _kill_group(self.proc, timeout=5.0)
            self.proc = None
        if os.environ.get("ANTIPHON_KEEP_JACK_LOGS") is None:
            shutil.rmtree(self.tmp, ignore_errors=True)

    def __enter__(self) -> "JackServer":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    # ---- tools -------------------------------------------------------------------------------
    def run(self, *args: str, timeout: float = 10.0, input: str | None = None) -> subprocess.CompletedProcess:
        return subprocess.run(list(args), env=self.env, capture_output=True, text=True, timeout=timeout, input=input)

    def spawn(self, args: list[str], log_name: str, port: str = "", cls=Proc) -> Proc:
        path = os.path.join(self.tmp, f"{log_name}-{next(_counter)}.log")
        with open(path, "w") as log:
            p = subprocess.Popen(args, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                 env=self.env, start_new_session=True)
        proc = cls(p, port, path)
        self.children.append(proc)
        return proc

    def ports(self, *flags: str) -> list[str]:
        """Port names (jack_lsp FLAGS: e.g. '-t' adds type lines; plain names are returned)."""
        out = self.run("jack_lsp", *flags).stdout
        return [line for line in out.splitlines() if line and not line.startswith((" ", "\t"))]

    def connections(self) -> dict[str, list[str]]:
        conns: dict[str, list[str]] = {}
        current = None
        for line in self.run("jack_lsp", "-c").stdout.splitlines():
            if line.startswith((" ", "\t")):
                if current is not None:
                    conns[current].append(line.strip())
            elif line:
                current = line
                conns[current] = []
        return conns

    def wait_for_port(self, port: str, timeout: float = 5.0) -> str:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if port in self.ports():
                return port
            time.sleep(0.05)
        raise RuntimeError(f"JACK port {port!r} did not appear; ports: {self.ports()}")

    def connect(self, src: str, dst: str) -> None:
        r = self.run("jack_connect", src, dst)
        if r.returncode != 0:
            raise RuntimeError(f"jack_connect {src} {dst} failed: {r.stdout}{r.stderr}")

    def transport(self, *commands: str) -> str:
        """Feed commands ('play', 'stop', 'locate FRAME', 'tempo BPM', 'master') to jack_transport.

        jack_transport is interactive (readline): commands go on stdin, one per line, and it exits
        at 'quit' (added here)."""
        r = self.run("jack_transport", input="\n".join([*commands, "quit"]) + "\n")
        return r.stdout + r.stderr

    def midi_clock(self, bpm: float, jitter: float = 0.0, *extra: str, name: str = "jack_midi_clock") -> Proc:
        """jack_midi_clock -b BPM [-J JITTER%]: clock while the transport rolls (needs transport('play'))."""
        args = ["jack_midi_clock", "-b", f"{bpm:g}", *extra]
        if jitter:
            args += ["-J", f"{jitter:g}"]
        p = self.spawn(args, "midi_clock", port=f"{name}:mclk_out")
        self.wait_for_port(p.port)
        return p

    def midi_dump(self, client: str = "antiphon_dump") -> MidiDump:
        """jack_midi_dump -a CLIENT: records with frame timestamps from its start; stop() parses."""
        p = self.spawn(["jack_midi_dump", "-a", client], "midi_dump", port=f"{client}:input", cls=MidiDump)
        self.wait_for_port(p.port)
        return p  # type: ignore[return-value]
