"""What headless `antiphon live` prints: the next step after start (which ports to connect, and how, for the
backend that runs), and one status line in plain words, rewritten in place on a terminal; a log (not a
terminal) or --verbose gets the full line of figures instead, as new lines."""
from __future__ import annotations

import time

from antiphon.plugin.live import LiveSnapshot, status_line
from antiphon.plugin.ports import CLIENT_NAME

LOG_EVERY_S = 0.5


def start_lines(style: str, snap: LiveSnapshot) -> list[str]:
    """The lines after start: where Antiphon listens and plays, another instance's name, the next step."""
    inp, out = snap.ports
    lines = [f"Antiphon live: style {style}, in '{inp}', out '{out}' ({snap.backend}); Ctrl-C to stop"]
    client = inp.split(":", 1)[0] if snap.backend == "jack" else None
    if client and client != CLIENT_NAME:
        lines.append(f"another Antiphon is running: this one is {client}")
    lines.append("next: " + next_step(snap.backend, inp, out))
    return lines


def next_step(backend: str, inp: str, out: str) -> str:
    if backend == "jack":
        return (f'connect your track and its MIDI clock to Antiphon and Antiphon to an instrument: '
                f'jack_connect "YOUR-DAW:midi_out" "{inp}"; jack_connect "{out}" "YOUR-SYNTH:midi_in" '
                f'(jack_lsp -t lists the ports). Antiphon plays MIDI only: it makes no sound of its own')
    if backend == "alsa":
        return (f"connect them with aconnect (aconnect -l lists the clients): aconnect YOUR-DAW '{inp}'; "
                f"aconnect '{out}' YOUR-SYNTH. Antiphon plays MIDI only: it makes no sound of its own")
    return (f"in your DAW, send a track and MIDI clock to '{inp}' and take an instrument track's input from "
            f"'{out}'. Antiphon plays MIDI only: it makes no sound of its own")


def plain_status(s: LiveSnapshot) -> str:
    """Tempo, position, state, what it heard, the answer's timing: the line a musician reads."""
    c, ss, st = s.clock, s.session, s.sender
    clock = "MIDI clock" if c.source == "midi" else "own clock"
    where = f"bar {c.bar} beat {c.beat}" if c.running else "stopped"
    timing = (f"last note {st.late_current_ms:.1f} ms late" if st.late_current_ms >= 1.0
              else "notes on their tick")
    heard = f"heard {s.received} message{'s' if s.received != 1 else ''}"
    return (f"{c.bpm:.0f} BPM ({clock}), {where} | {ss.state}, {ss.answers} answer{'s' if ss.answers != 1 else ''}"
            f" | {heard}, sent {st.sent} | {timing}")


class StatusPrinter:
    """In place on a terminal (the plain line, at most its width); new lines of the full figures otherwise."""

    def __init__(self, stream, verbose: bool = False):
        self.stream = stream
        self.in_place = bool(getattr(stream, "isatty", lambda: False)()) and not verbose
        self._last = 0.0
        self._shown = False

    def show(self, snap: LiveSnapshot) -> None:
        if self.in_place:
            import shutil

            width = max(20, shutil.get_terminal_size((100, 20)).columns - 1)
            self.stream.write("\r" + plain_status(snap)[:width] + "\x1b[K")
            self.stream.flush()
            self._shown = True
            return
        now = time.monotonic()
        if now - self._last >= LOG_EVERY_S:
            self._last = now
            self.stream.write(status_line(snap) + "\n")
            self.stream.flush()

    def done(self) -> None:
        """Ends the line rewritten in place, so what comes next starts on its own."""
        if self._shown:
            self.stream.write("\n")
            self.stream.flush()
            self._shown = False
