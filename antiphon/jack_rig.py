"""A private JACK server (dummy driver) and the JACK command-line tools around it: the rig the JACK tests
and `antiphon bench --jack` run, the way a DAW drives Antiphon.

    with JackServer() as jack:                      # jackd -n antiphon-test-PID-N --no-realtime -d dummy -r 48000 -p 64
        clock = jack.midi_clock(bpm=120)            # jack_midi_clock -b 120 (port jack_midi_clock:mclk_out)
        dump = jack.midi_dump("rec")                # jack_midi_dump -a rec (port rec:input)
        jack.connect(clock.port, "rec:input")
        jack.transport("play")                      # jack_transport, commands on its stdin
        ...
        events = dump.stop()                        # [(frame, bytes), ...]

Every process runs in its own session with JACK_DEFAULT_SERVER set and a settings folder of its own
(XDG_CONFIG_HOME in the server's temp dir: nothing a test runs reads or writes the user's settings), and
is killed by process group on stop(); the server is stopped last. `require_jackd()` raises
RigUnavailable when jackd is missing (the tests skip then, except with CI=true, where they fail: tests/jack.py).

The server is JACK's default, asynchronous one (what users run), unless a test asks for `sync=True`
and says why. `PipeWireServer` is the same rig on PipeWire's JACK (a private, headless `pipewire`).
`busy()` starts a process that keeps a core busy, as a DAW or a synth beside Antiphon would.
`xruns(client)` counts the server log's late-cycle lines that name a client.
"""
from __future__ import annotations

import itertools
from contextlib import contextmanager
import os
import re
import shutil
import signal
import subprocess
import tempfile
import time
from dataclasses import dataclass, field

TOOLS = ("jackd", "jack_wait", "jack_lsp", "jack_connect", "jack_transport", "jack_midi_clock", "jack_midi_dump")
_counter = itertools.count()


TPB = 24  # ticks per beat (quarter)
CALL_CH = 1  # the player plays on channel 2
ANSWER_CH = 0  # antiphon answers on channel 1


def soprano(first_beats: float) -> list[tuple[float, float, int]]:
    """(onset beat, length in beats, MIDI pitch) of bach/bwv66.6's soprano, its first `first_beats`
    beats (the piece opens with a one-beat pickup)."""
    from music21 import corpus

    notes = corpus.parse("bach/bwv66.6").parts[0].flatten().notes
    return [(float(n.offset), float(n.quarterLength), n.pitch.midi) for n in notes if n.offset < first_beats]


def phrase_events(notes, start_tick: int, channel: int = CALL_CH, gap: int = 2) -> list[tuple[int, bytes]]:
    """Messages at song ticks: each note released `gap` ticks before its written end."""
    ev = []
    for onset, length, pitch in notes:
        on = start_tick + round(onset * TPB)
        off = start_tick + round((onset + length) * TPB) - gap
        ev.append((on, bytes([0x90 | channel, pitch, 80])))
        ev.append((off, bytes([0x80 | channel, pitch, 0])))
    return sorted(ev, key=lambda e: (e[0], e[1][0] & 0xF0 == 0x90))


def require_native() -> None:
    """RigUnavailable when Antiphon's own JACK client cannot be built here (no C compiler)."""
    from antiphon.plugin.jack_native import NativeUnavailable, build

    try:
        build()
    except NativeUnavailable as exc:
        missing_tools(f"{exc} (Debian: apt install gcc libc6-dev)")


def realtime_prefix() -> list[str]:
    """`chrt -f 15` where this machine allows SCHED_FIFO, for the rig's stand-ins for the DAW (the clock master,
    the player, the recorder). A DAW's JACK thread runs realtime; under a --no-realtime test server ours
    would not, and on this 2-core machine with other jobs beside, a starved jack_midi_clock dropped its own
    ticks (7 in 6 s, measured): a test would then measure the machine, not Antiphon. ANTIPHON_RT_TOOLS=0
    runs them as ordinary processes. Antiphon's own threads get no such help here: it asks for
    SCHED_FIFO itself, as it does on a user's machine."""
    if os.environ.get("ANTIPHON_RT_TOOLS", "1") == "0" or shutil.which("chrt") is None:
        return []
    try:
        import resource

        allowed = os.geteuid() == 0 or resource.getrlimit(resource.RLIMIT_RTPRIO)[0] >= 15
    except (ImportError, OSError, AttributeError):
        allowed = False
    return ["chrt", "-f", "15"] if allowed else []


def measure_runs(default: int = 1) -> int:
    """How many times the measuring tests repeat their run: ANTIPHON_MEASURE_RUNS, else `default` (the
    suite stays fast; the full measurement is the same test with the variable set)."""
    return max(1, int(os.environ.get("ANTIPHON_MEASURE_RUNS", default)))


class RigUnavailable(RuntimeError):
    """A tool the rig needs is not installed here (the message says which, and the Debian package)."""


def missing_tools(reason: str) -> None:
    raise RigUnavailable(reason)


def require_jackd() -> None:
    """RigUnavailable when jackd and its tools are not installed."""
    missing = [t for t in TOOLS if shutil.which(t) is None]
    if not missing:
        return
    missing_tools(f"JACK tools missing: {', '.join(missing)} (Debian: apt install jackd2 jack-midi-clock)")


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


def unrecorded(events, log: str, channel: int = ANSWER_CH) -> int:
    """How many of the messages `antiphon live` says it sent ("stopped: N messages sent", in `log`) a
    recording of its port lacks: a recorder starved on a --no-realtime server misses cycles, and their
    messages with them (a lost note-off would read as a note left hanging). -1 when the log has no such line."""
    sent = re.findall(r"stopped: (\d+) messages sent", log)
    got = sum(1 for _, m in events if m[0] < 0xF0 and m[0] & 0x0F == channel)
    return int(sent[-1]) - got if sent else -1


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


_REGISTRY = "/dev/shm/jack-shm-registry"


def reclaim_registry(pid: int | None = None) -> list[str]:
    """Frees the slots of dead servers in JACK's shared registry (all of them, or `pid`'s).

    jackd registers its name there (8 slots: pid, name); a server that dies without unregistering
    keeps its slot, and JACK reclaims a slot only for a server of the same name, so with a fresh name
    per test the 9th start fails with 'Too many servers already active'. Layout (JACK2 shm.h):
    a 24-byte header, then 8 x {int32 pid; char name[257]} padded to 264 bytes."""
    import struct

    freed = []
    try:
        with open(_REGISTRY, "r+b") as f:
            head = f.read(24 + 8 * 264)
            for i in range(8):
                off = 24 + 264 * i
                (owner,) = struct.unpack_from("<i", head, off)
                if owner <= 0 or (pid is not None and owner != pid):
                    continue
                try:
                    os.kill(owner, 0)
                    continue  # alive
                except ProcessLookupError:
                    pass
                except PermissionError:
                    continue
                f.seek(off)
                f.write(b"\0" * 264)
                freed.append(head[off + 4 : off + 261].split(b"\0")[0].decode(errors="replace"))
    except OSError:
        pass
    return freed


@dataclass
class Proc:
    """A tool running against the private server."""

    popen: subprocess.Popen
    port: str = ""  # its main JACK port, where it has one
    log: str = ""  # file with its stdout/stderr
    stop_signal: int = signal.SIGTERM  # the one it closes its JACK client on

    def stop(self) -> None:
        _kill_group(self.popen, self.stop_signal)

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
    # jackd -S: the server waits for every client each cycle. Asynchronous (the default) drops a
    # cycle's MIDI for a client that has not finished in time ("ProcessGraphAsyncMaster: Process
    # error"), which on a loaded machine loses clock ticks and notes; synchronous only runs slower
    # than wall time, and tests that measure in frames are immune to that.
    sync: bool = False
    # jackd's own default (-R): its driver and every client's process thread run SCHED_FIFO. The tests use
    # --no-realtime, as CI machines allow; tests/measure_jam.py --realtime-server measures both
    realtime: bool = False
    name: str = field(default_factory=lambda: f"antiphon-test-{os.getpid()}-{next(_counter)}")
    proc: subprocess.Popen | None = None
    children: list[Proc] = field(default_factory=list)
    tmp: str = field(default_factory=lambda: tempfile.mkdtemp(prefix="antiphon-jack-"))

    @property
    def env(self) -> dict[str, str]:
        return dict(os.environ, JACK_DEFAULT_SERVER=self.name, JACK_NO_START_SERVER="1",
                    XDG_CONFIG_HOME=os.path.join(self.tmp, "config"))

    def start(self, timeout: float = 10.0, retried: bool = False) -> "JackServer":
        require_jackd()
        log = open(os.path.join(self.tmp, "jackd.log"), "w")
        self.proc = subprocess.Popen(
            ["jackd", "-n", self.name, *(["-S"] if self.sync else []), "-R" if self.realtime else "--no-realtime",
             "-d", "dummy", "-r", str(self.rate), "-p", str(self.period)],
            stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, env=self.env, start_new_session=True)
        log.close()
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None and "Too many servers" in self._log("jackd.log") and not retried:
                reclaim_registry()  # slots of servers killed earlier (by anyone): free them, once
                return self.start(timeout, retried=True)
            if self.proc.poll() is not None:
                raise RuntimeError(f"jackd exited with {self.proc.returncode}: {self._log('jackd.log')}")
            r = subprocess.run(["jack_wait", "-s", self.name, "-c"], env=self.env, capture_output=True, text=True)
            if r.returncode == 0 and "not" not in r.stdout:
                return self
            time.sleep(0.05)
        self.stop()
        raise RuntimeError(f"jackd {self.name} not ready after {timeout}s: {self._log('jackd.log')}")

    def _log(self, name: str) -> str:
        return self.log()[-2000:] if name == "jackd.log" else ""

    def log(self) -> str:
        """The server's whole log so far."""
        try:
            with open(os.path.join(self.tmp, "jackd.log"), errors="replace") as f:
                return f.read()
        except OSError:
            return ""

    def xruns(self, client: str, since: int = 0) -> int:
        """Late-cycle lines of the server log (from character `since`) that name `client`: JACK2 logs
        'client = NAME was not finished' and 'client NAME finished after current callback'."""
        rx = re.compile(rf"XRun: client (= )?{re.escape(client)}(-\d+)? (was not finished|finished after)")
        return len(rx.findall(self.log()[since:]))

    def process_errors(self, since: int = 0) -> int:
        """'Process error' lines of the server log (a cycle the graph did not finish in time, whoever was late)."""
        return self.log()[since:].count("Process error")

    def busy(self) -> Proc:
        """A process that keeps one core busy (pure Python arithmetic) until the server stops."""
        import sys

        code = "x = 0\nwhile True:\n    x = (x * 7 + 1) % 1000003\n"
        return self.spawn([sys.executable, "-c", code], "busy")

    def stop(self) -> None:
        # each child with the signal it closes its client on: a client that just dies makes the server
        # wait for it (a second per cycle, worse with -S), jack_midi_dump then hangs on SIGINT, and a
        # server killed with SIGKILL leaves its slot in JACK's registry (8 slots; then 'Too many servers')
        for child in reversed(self.children):
            child.popen.poll() is None and child.stop()
        self.children.clear()
        if self.proc is not None:
            _kill_group(self.proc, timeout=5.0)
            self._reclaim(self.proc.pid)
            self.proc = None
        if os.environ.get("ANTIPHON_KEEP_JACK_LOGS") is None:
            shutil.rmtree(self.tmp, ignore_errors=True)

    def _reclaim(self, pid: int) -> None:
        reclaim_registry(pid)  # a no-op after a clean exit

    def __enter__(self) -> "JackServer":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    # ---- tools -------------------------------------------------------------------------------
    @property
    def rtmidi_env(self) -> dict[str, str]:
        """The environment for a process whose JACK clients are python-rtmidi's (its bundled libjack)."""
        return self.env

    def run(self, *args: str, timeout: float = 10.0, input: str | None = None) -> subprocess.CompletedProcess:
        return subprocess.run(list(args), env=self.env, capture_output=True, text=True, timeout=timeout, input=input)

    @property
    def antiphon_env(self) -> dict[str, str]:
        """The environment `antiphon live` runs in (as a user would start it)."""
        return self.env

    def spawn(self, args: list[str], log_name: str, port: str = "", cls=Proc, rtmidi: bool = False,
              antiphon: bool = False, realtime: bool = False) -> Proc:
        """`args` against this server; `rtmidi`: the process opens python-rtmidi JACK clients; `antiphon`:
        it is Antiphon, started as a user would; `realtime`: a stand-in for the DAW (see `realtime_prefix`)."""
        path = os.path.join(self.tmp, f"{log_name}-{next(_counter)}.log")
        if realtime:
            args = [*realtime_prefix(), *args]
        env = self.antiphon_env if antiphon else self.rtmidi_env if rtmidi else self.env
        with open(path, "w") as log:
            p = subprocess.Popen(args, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                 env=env, start_new_session=True)
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
        p = self.spawn(args, "midi_clock", port=f"{name}:mclk_out", realtime=True)
        p.stop_signal = signal.SIGINT  # SIGTERM kills it without closing its client
        self.wait_for_port(p.port)
        return p

    def frame_recorder(self, client: str = "antiphon_frames") -> MidiDump:
        """A recorder that stamps every event with JACK's own frame time (jack_last_frame_time + offset; see
        `_record`). jack_midi_dump counts the frames of the cycles it ran: each cycle it misses (a starved
        --no-realtime server on a loaded machine) shifts every later stamp by a period. This one's stamps
        stay true (a missed cycle only loses that cycle's events), so positions and tick offsets hold."""
        import sys

        p = self.spawn([sys.executable, "-m", "antiphon.jack_rig", "record", client], "frames",
                       port=f"{client}:input", cls=MidiDump)
        wait_for_line(p, r"^ready$", 30.0)
        return p  # type: ignore[return-value]

    def midi_dump(self, client: str = "antiphon_dump") -> MidiDump:
        """jack_midi_dump -a CLIENT: records with frame timestamps from its start; stop() parses."""
        p = self.spawn(["jack_midi_dump", "-a", client], "midi_dump", port=f"{client}:input", cls=MidiDump,
                       realtime=True)
        self.wait_for_port(p.port)
        return p  # type: ignore[return-value]


# ---- PipeWire's JACK ---------------------------------------------------------------------------------------
PIPEWIRE_TOOLS = ("pipewire", "pw-jack")


def pipewire_libjack() -> str | None:
    """PipeWire's libjack.so.0 (Debian: pipewire-jack), or None."""
    import glob

    found = sorted(glob.glob("/usr/lib/*/pipewire-0.3/jack/libjack.so.0"))
    return found[0] if found else None


def require_pipewire() -> None:
    missing = [t for t in PIPEWIRE_TOOLS if shutil.which(t) is None]
    if pipewire_libjack() is None:
        missing.append("PipeWire's libjack")
    if not missing:
        return
    missing_tools(f"PipeWire missing: {', '.join(missing)} (Debian: apt install pipewire pipewire-jack pipewire-bin)")


@dataclass
class PipeWireServer(JackServer):
    """A private, headless PipeWire (its shipped config has a dummy driver), the JACK rig's tools run on
    its JACK, as `pw-jack` runs them. The quantum is `period` frames at `rate`.

    Antiphon itself gets no help (no pw-jack, no LD_PRELOAD): it finds PipeWire's libjack by itself.
    python-rtmidi's clients (the test's player) need PipeWire's libjack preloaded: its wheel bundles a
    libjack of its own that cannot reach PipeWire."""

    name: str = "pipewire"

    @property
    def runtime_dir(self) -> str:
        return os.path.join(self.tmp, "run")

    @property
    def base_env(self) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if k not in ("JACK_DEFAULT_SERVER", "LD_PRELOAD", "LD_LIBRARY_PATH")}
        env.update(XDG_RUNTIME_DIR=self.runtime_dir, XDG_CONFIG_HOME=os.path.join(self.tmp, "config"),
                   XDG_STATE_HOME=os.path.join(self.tmp, "state"), JACK_NO_START_SERVER="1",
                   PIPEWIRE_QUANTUM=f"{self.period}/{self.rate}", PIPEWIRE_LATENCY=f"{self.period}/{self.rate}",
                   DBUS_SESSION_BUS_ADDRESS="disabled:")
        return env

    @property
    def env(self) -> dict[str, str]:
        """What a JACK tool gets under `pw-jack`: PipeWire's libjack first on the loader's path."""
        env = self.base_env
        env["LD_LIBRARY_PATH"] = os.path.dirname(pipewire_libjack() or "")
        return env

    @property
    def rtmidi_env(self) -> dict[str, str]:
        return dict(self.env, LD_PRELOAD=pipewire_libjack() or "")

    @property
    def antiphon_env(self) -> dict[str, str]:
        """A user's desktop session: PipeWire running, nothing preloaded, no pw-jack."""
        return self.base_env

    def start(self, timeout: float = 10.0, retried: bool = False) -> "PipeWireServer":
        require_jackd()
        require_pipewire()
        os.makedirs(self.runtime_dir, mode=0o700, exist_ok=True)
        os.chmod(self.runtime_dir, 0o700)
        log = open(os.path.join(self.tmp, "jackd.log"), "w")
        # info level: the graph's late nodes ("xrun") land in its log, as JACK2's do in jackd's
        self.proc = subprocess.Popen(["pipewire"], stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                     env=dict(self.base_env, PIPEWIRE_DEBUG="3"), start_new_session=True)
        log.close()
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"pipewire exited with {self.proc.returncode}: {self._log('jackd.log')}")
            if self.run("jack_lsp").returncode == 0:
                return self
            time.sleep(0.1)
        self.stop()
        raise RuntimeError(f"PipeWire's JACK not ready after {timeout}s: {self._log('jackd.log')}")

    def _reclaim(self, pid: int) -> None:
        pass  # PipeWire keeps no JACK server registry


# ---- a clock-driven player and the live engine as processes ----------------------------------------------
def find_port(server: JackServer, suffix: str, timeout: float = 30.0) -> str:
    """The full name of the first port ending in `suffix` (rtmidi clients get renamed 'Antiphon-01')."""
    deadline = time.monotonic() + timeout
    while True:
        found = [p for p in server.ports() if p.endswith(suffix)]
        if found:
            return found[0]
        if time.monotonic() > deadline:
            raise RuntimeError(f"no JACK port ending in {suffix!r}; ports: {server.ports()}")
        time.sleep(0.1)


def wait_for_line(proc: Proc, pattern: str, timeout: float, alive: bool = True) -> re.Match:
    """Waits until a line of `proc`'s log matches `pattern` (a regex); returns the last match."""
    rx = re.compile(pattern, re.M)
    deadline = time.monotonic() + timeout
    while True:
        found = list(rx.finditer(proc.output()))
        if found:
            return found[-1]
        if alive and proc.popen.poll() is not None:
            raise RuntimeError(f"{proc.popen.args[0]} exited with {proc.popen.returncode}:\n{proc.output()[-3000:]}")
        if time.monotonic() > deadline:
            raise RuntimeError(f"no line matching {pattern!r} after {timeout}s:\n{proc.output()[-3000:]}")
        time.sleep(0.02)


@dataclass
class Player(Proc):
    """A sequencer driven by MIDI clock: each message is sent on the 0xF8 of its song tick (see _play)."""

    clock_port: str = ""

    def tick(self) -> int:
        """The last whole beat it reported (-1 before Start)."""
        found = re.findall(r"^tick (\d+)$", self.output(), re.M)
        return int(found[-1]) if found else -1

    def wait_tick(self, tick: int, timeout: float = 30.0) -> None:
        deadline = time.monotonic() + timeout
        while self.tick() < tick:
            if self.popen.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"player did not reach tick {tick} (at {self.tick()}):\n{self.output()[-2000:]}")
            time.sleep(0.01)


def midi_player(server: JackServer, events: list[tuple[int, bytes]], client: str = "antiphon_player") -> Player:
    """Starts a player process for [(song tick, message)]: it counts the 0xF8s it receives after Start
    (the first one is tick 0), sends each message on its tick's 0xF8 from the input callback, so it
    keeps the clock's tempo whatever speed the server runs at, and prints `tick N` every beat.
    Ports: CLIENT:out (the notes) and CLIENT_clock:clock (connect the clock there)."""
    import json
    import sys

    path = os.path.join(server.tmp, f"phrase-{next(_counter)}.json")
    with open(path, "w") as f:
        json.dump([[int(t), list(m)] for t, m in events], f)
    p = server.spawn([sys.executable, "-m", "antiphon.jack_rig", "play", path, client], "player", port=f"{client}:out",
                     cls=Player, rtmidi=True, realtime=True)
    p.clock_port = f"{client}_clock:clock"
    wait_for_line(p, r"^ready$", 30.0)
    return p  # type: ignore[return-value]


def _play(path: str, client: str) -> None:
    import json
    import sys
    import threading

    import rtmidi

    with open(path) as f:
        by_tick: dict[int, list[bytes]] = {}
        for t, m in json.load(f):
            by_tick.setdefault(t, []).append(bytes(m))
    api = rtmidi.API_UNIX_JACK
    out = rtmidi.MidiOut(api, name=client)
    out.open_virtual_port("out")
    inp = rtmidi.MidiIn(api, name=client + "_clock")
    inp.ignore_types(sysex=True, timing=False, active_sense=True)
    state = {"tick": -1, "rolling": False}
    sounding: set[tuple[int, int]] = set()

    def on_message(event, _data=None) -> None:
        msg = event[0]
        status = msg[0]
        if status == 0xFA:
            state["tick"], state["rolling"] = -1, True
        elif status == 0xFB:
            state["rolling"] = True
        elif status == 0xFC:
            state["rolling"] = False
            for ch, pitch in sorted(sounding):
                out.send_message([0x80 | ch, pitch, 0])
            sounding.clear()
        elif status == 0xF8 and state["rolling"]:
            state["tick"] += 1
            for m in by_tick.get(state["tick"], ()):
                out.send_message(m)
                key = (m[0] & 0x0F, m[1])
                if m[0] & 0xF0 == 0x90 and m[2]:
                    sounding.add(key)
                else:
                    sounding.discard(key)
            if state["tick"] % 24 == 0:
                print(f"tick {state['tick']}", flush=True)

    inp.set_callback(on_message)
    inp.open_virtual_port("clock")
    print("ready", flush=True)
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    while not stop.wait(0.1):
        pass
    inp.close_port()
    out.close_port()
    inp.delete()  # closes the JACK clients (see JackServer.stop)
    out.delete()
    sys.exit(0)


def _record(client: str) -> None:
    """The frame recorder: Antiphon's own JACK client, used for its input only (its C callback stamps each
    event with the true frame); prints every event as jack_midi_dump does ("FRAME: hex bytes") on SIGINT."""
    import sys
    import threading

    from antiphon.plugin.jack_native import NativeJack

    io = NativeJack.open(client_name=client, in_port="input", out_port="unused")
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    print("ready", flush=True)
    events = []
    while not stop.wait(0.005):
        events += io.read_input()
    events += io.read_input()
    io.close()
    for _, msg, _, _, frame, *_ in events:
        print(f"{frame}: {msg.hex(' ')}")
    sys.stdout.flush()
    sys.exit(0)


def live(server: JackServer, *args: str, panel: bool = False) -> Proc:
    """`antiphon live --backend jack --headless ARGS` against the server; ports found by suffix.
    With `panel`, the PyQt6 panel runs instead of the status line (offscreen, still redrawing)."""
    import sys

    import shlex

    exe = os.path.join(os.path.dirname(sys.executable), "antiphon")
    cmd = [exe] if os.path.exists(exe) else [sys.executable, "-m", "antiphon"]
    if os.environ.get("ANTIPHON_TEST_COMMAND"):  # another build, measured side by side (tests/measure_jam.py)
        cmd = shlex.split(os.environ["ANTIPHON_TEST_COMMAND"])
    mode = [] if panel else ["--headless"]
    p = server.spawn([*cmd, "live", "--backend", "jack", *mode, *args], "antiphon", antiphon=True)
    p.stop_signal = signal.SIGINT
    wait_for_line(p, r"^Antiphon live: ", 90.0)
    return p



@contextmanager
def jack_env(server: JackServer):
    """Make `server` this process's default (python-rtmidi and the sender child read the env)."""
    saved = {k: os.environ.get(k) for k in ("JACK_DEFAULT_SERVER", "JACK_NO_START_SERVER")}
    os.environ["JACK_DEFAULT_SERVER"] = server.name
    os.environ["JACK_NO_START_SERVER"] = "1"
    try:
        yield server
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


if __name__ == "__main__":
    import sys

    if len(sys.argv) == 4 and sys.argv[1] == "play":
        _play(sys.argv[2], sys.argv[3])
    elif len(sys.argv) == 3 and sys.argv[1] == "record":
        _record(sys.argv[2])
    else:
        sys.exit("usage: python -m antiphon.jack_rig play PHRASE.json CLIENT | record CLIENT")
