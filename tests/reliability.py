"""Helpers for the reliability tests (tests/test_stuck_notes.py, tests/test_floods.py, tests/test_nothing_lost.py):
a LiveEngine with a tiny random model on a private JACK server, a keyboard port, a recorder of Antiphon Out,
and the counting of notes left hanging on what JACK actually delivered."""
from __future__ import annotations

import time
from pathlib import Path

from tests.jack import JackServer, jack_env  # noqa: F401  (jack_env: re-exported for the tests)

ANSWER_CH = 0
_RUNTIME = None


def tiny_runtime():
    global _RUNTIME
    if _RUNTIME is None:
        import torch

        from antiphon.engine.model import PRESETS, EventLSTM
        from antiphon.engine.runtime import StepRuntime

        torch.manual_seed(0)
        _RUNTIME = StepRuntime(EventLSTM(PRESETS["tiny"]))
    return _RUNTIME


def tiny_style(path: Path, name: str = "tiny") -> Path:
    import torch

    from antiphon.engine.model import PRESETS, EventLSTM
    from antiphon.engine.style import save_style

    torch.manual_seed(1)
    save_style(path, EventLSTM(PRESETS["tiny"]), {"name": name})
    return path


def make_engine(bpm: float = 180.0, response_bars: int = 2, **params):
    from antiphon.engine.session import SessionParams
    from antiphon.plugin.live import LiveConfig, LiveEngine

    cfg = LiveConfig(backend="jack", bpm=bpm, seed=3,
                     params=SessionParams(response_bars=response_bars, silence_beats=0.5, **params))
    return LiveEngine(cfg, runtime=tiny_runtime(), style_name="t")


class Keyboard:
    """A python-rtmidi JACK output: the test's keyboard, wired into Antiphon In."""

    def __init__(self, server: JackServer, dest: str, client: str = "rel_keys"):
        import rtmidi

        self.out = rtmidi.MidiOut(rtmidi.API_UNIX_JACK, name=client)
        self.out.open_virtual_port("keys")
        self.port = server.wait_for_port(f"{client}:keys")
        server.connect(self.port, dest)

    def send(self, msg) -> None:
        self.out.send_message(list(msg))

    def phrase(self, pitches=(60, 64, 67, 72), beat_s: float = 0.2, channel: int = 1) -> None:
        for p in pitches:
            self.send([0x90 | channel, p, 90])
            time.sleep(beat_s * 0.8)
            self.send([0x80 | channel, p, 0])
            time.sleep(beat_s * 0.2)

    def close(self) -> None:
        self.out.close_port()
        self.out.delete()


def wait_until(cond, timeout: float, what: str, poll: float = 0.01):
    deadline = time.monotonic() + timeout
    while True:
        v = cond()
        if v:
            return v
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        time.sleep(poll)


def answering(engine, notes: int = 1, timeout: float = 20.0) -> None:
    """Wait until the answer is under way with at least `notes` of ours sounding (the sender says so)."""
    wait_until(lambda: engine.sender.stats().sounding >= notes, timeout, f"{notes} answer note(s) sounding")


def note_msgs(events, channel: int = ANSWER_CH):
    return [(f, m) for f, m in events if m[0] & 0xF0 in (0x80, 0x90) and m[0] & 0x0F == channel]


def hanging(events, channel: int = ANSWER_CH, all_notes_off: bool = True) -> set[int]:
    """Pitches on `channel` whose last note-on has no note-off after it. With `all_notes_off`, a CC 123
    (All Notes Off) on the channel ends every note sounding then, as it does on a synth."""
    sounding: set[int] = set()
    for _, m in events:
        if m[0] & 0x0F != channel:
            continue
        kind = m[0] & 0xF0
        if kind == 0x90 and len(m) == 3 and m[2] > 0:
            sounding.add(m[1])
        elif kind in (0x80, 0x90):
            sounding.discard(m[1])
        elif kind == 0xB0 and m[1] == 123 and all_notes_off:
            sounding.clear()
    return sounding


def count(events, channel: int = ANSWER_CH) -> dict:
    ons = sum(1 for _, m in events if m[0] == 0x90 | channel and m[2] > 0)
    offs = sum(1 for _, m in events if m[0] & 0x0F == channel and (m[0] & 0xF0 == 0x80 or (m[0] & 0xF0 == 0x90 and m[2] == 0)))
    cc123 = sum(1 for _, m in events if m[0] == 0xB0 | channel and m[1] == 123)
    return {"messages": len(events), "note_ons": ons, "note_offs": offs, "cc123": cc123,
            "hanging_strict": len(hanging(events, channel, all_notes_off=False)),
            "hanging": len(hanging(events, channel))}


def peak_rss_kb(pid: int) -> int:
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1])
    return -1


def rss_kb(pid: int) -> int:
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return -1


def status_state(proc) -> str:
    """The session state on `antiphon live --headless`'s last status line ('' before the first)."""
    import re

    found = re.findall(r"\|\s+\w+\s+(listening|answering|stopped)\s", proc.output())
    return found[-1] if found else ""


def start_live(server: JackServer, style: Path, *args: str):
    """`antiphon live --backend jack --headless --style STYLE ARGS` and its 'Antiphon In' port."""
    from tests.jack import find_port, live

    app = live(server, "--style", str(style), "--bpm", "180", "--response-bars", "2", "--silence-beats", "0.5",
               "--seed", "3", *args)
    a_in = find_port(server, ":Antiphon In")
    return app, a_in
