"""A scrolling piano roll of the last bars: the player's notes and Antiphon's in two colours.

x is song ticks with the playhead at the right edge; y is pitch (the range follows the notes, at
least two octaves). The window is `bars` bars wide, or wider (in whole bars, up to MAX_BARS) when the
last call and its answer need more: the whole exchange stays in view until the player starts the next
call. The widget only draws what `set_notes` hands it (the session snapshot's roll).
"""
from __future__ import annotations

import bisect
import math

from PyQt6.QtCore import QRectF, Qt
from PyQt6.QtGui import QColor, QFont, QPainter, QPen
from PyQt6.QtWidgets import QSizePolicy, QWidget

from antiphon.engine.events import Meter

PLAYER_COLOUR = QColor("#4fa3ff")
ANTIPHON_COLOUR = QColor("#ff9a3c")
BACKGROUND = QColor("#1b1e24")
BLACK_KEY_ROW = QColor("#16181d")
BAR_LINE = QColor("#5a6170")
BEAT_LINE = QColor("#2c313b")
PLAYHEAD = QColor("#e8e8e8")
KEYS_WIDTH = 34
MAX_BARS = 32
_BLACK = {1, 3, 6, 8, 10}


class PianoRoll(QWidget):
    def __init__(self, meter: Meter = Meter(), bars: int = 8, parent=None):
        super().__init__(parent)
        self.meter = meter
        self.bars = bars
        self.notes: tuple = ()  # RollNote(start, end, pitch, velocity, who), song ticks
        self.now = 0.0  # song tick at the playhead
        self.shown_bars = bars  # the window's width now
        self.low, self.high = 48, 84
        self.setMinimumSize(360, 180)
        self.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Expanding)
        self.setToolTip("Blue: you. Orange: Antiphon. The playhead is the right edge.")

    # ------------------------------------------------------------------ model
    @property
    def span(self) -> float:
        return float(self.meter.ticks_per_bar * self.shown_bars)

    def set_notes(self, notes, now: float) -> None:
        self.notes = tuple(notes)
        self.now = float(now)
        self.shown_bars = self._bars_needed()
        self._fit_range()
        self.update()

    def last_call_start(self) -> float | None:
        """Where the player's last call began: its earliest note with no answer note starting between it
        and the call's later notes (None before anyone played)."""
        player = sorted(n.start for n in self.notes if n.who == "player")
        if not player:
            return None
        ours = sorted(n.start for n in self.notes if n.who == "antiphon")
        start = player[-1]
        for earlier in reversed(player[:-1]):
            i = bisect.bisect_right(ours, earlier)
            if i < len(ours) and ours[i] < start:
                break  # Antiphon answered in between: that note belongs to the call before
            start = earlier
        return start

    def _bars_needed(self) -> int:
        start = self.last_call_start()
        if start is None:
            return self.bars
        margin = self.meter.ticks_per_beat / 2  # the call's first note not on the window's very edge
        needed = math.ceil((self.now - start + margin) / self.meter.ticks_per_bar - 1e-9)
        return max(self.bars, min(MAX_BARS, needed))

    def sounding(self, who: str) -> bool:
        """Does `who` hold a note at the playhead (answers are scheduled ahead: end may be later)?"""
        return any(n.who == who and n.start <= self.now and (n.end is None or n.end > self.now) for n in self.notes)

    def visible_notes(self) -> list:
        """The notes that overlap the window (the last `bars` bars up to the playhead)."""
        left = self.now - self.span
        return [n for n in self.notes if (n.end if n.end is not None else self.now) >= left and n.start <= self.now]

    def _fit_range(self) -> None:
        pitches = [n.pitch for n in self.visible_notes()]
        if not pitches:
            return  # keep the last range: the roll does not jump when it empties
        lo, hi = min(pitches) - 2, max(pitches) + 2
        if hi - lo < 24:
            mid = (lo + hi) // 2
            lo, hi = mid - 12, mid + 12
        self.low, self.high = max(0, lo), min(127, hi)

    # ------------------------------------------------------------------ drawing
    def paintEvent(self, event) -> None:
        p = QPainter(self)
        p.setRenderHint(QPainter.RenderHint.Antialiasing, False)
        w, h = self.width(), self.height()
        p.fillRect(0, 0, w, h, BACKGROUND)
        rows = self.high - self.low + 1
        row_h = h / rows
        roll_w = w - KEYS_WIDTH
        left = self.now - self.span

        def x_of(tick: float) -> float:
            return KEYS_WIDTH + (tick - left) / self.span * roll_w

        def y_of(pitch: int) -> float:
            return (self.high - pitch) * row_h

        small = QFont(self.font())
        small.setPointSizeF(max(6.5, min(8.5, row_h * 1.4)))
        p.setFont(small)
        for pitch in range(self.low, self.high + 1):
            y = y_of(pitch)
            black = pitch % 12 in _BLACK
            if black:
                p.fillRect(QRectF(KEYS_WIDTH, y, roll_w, row_h), BLACK_KEY_ROW)
            p.fillRect(QRectF(0, y, KEYS_WIDTH - 2, row_h), QColor("#2a2d33") if black else QColor("#d8d8d8"))
            if pitch % 12 == 0:
                p.setPen(QPen(BEAT_LINE))
                p.drawLine(int(KEYS_WIDTH), int(y + row_h), w, int(y + row_h))
                if row_h * 12 >= 40:
                    p.setPen(QColor("#30333a"))
                    p.drawText(QRectF(0, y - 6, KEYS_WIDTH - 4, row_h + 12),
                               Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter, f"C{pitch // 12 - 1}")

        if left < 0:  # before the song's start: shaded, no bar numbers
            p.fillRect(QRectF(KEYS_WIDTH, 0, min(roll_w, x_of(0) - KEYS_WIDTH), h), QColor(0, 0, 0, 90))
        beat, bar = self.meter.ticks_per_beat, self.meter.ticks_per_bar
        first = int(max(left, 0) // beat) * beat
        t = first
        while t <= self.now:
            if t >= left:
                x = int(x_of(t))
                on_bar = t % bar == 0
                p.setPen(QPen(BAR_LINE if on_bar else BEAT_LINE, 1))
                p.drawLine(x, 0, x, h)
                if on_bar:
                    p.setPen(QColor("#9aa3b5"))
                    p.drawText(x + 3, 11, str(int(t // bar) + 1))
            t += beat

        for n in self.visible_notes():
            end = min(n.end, self.now) if n.end is not None else self.now
            x0, x1 = max(x_of(n.start), KEYS_WIDTH), x_of(end)
            colour = QColor(PLAYER_COLOUR if n.who == "player" else ANTIPHON_COLOUR)
            colour.setAlphaF(0.45 + 0.55 * min(1.0, n.velocity / 127))
            rect = QRectF(x0, y_of(n.pitch) + 0.5, max(3.0, x1 - x0), max(2.0, row_h - 1))
            p.fillRect(rect, colour)
            p.setPen(QPen(colour.darker(160), 1))
            p.drawRect(rect)
            if n.end is None or n.end > self.now:  # sounding: a bright leading edge
                p.fillRect(QRectF(rect.right() - 2, rect.top(), 2, rect.height()), QColor("white"))

        p.setPen(QPen(PLAYHEAD, 2))
        p.drawLine(w - 1, 0, w - 1, h)
        if not self.notes:
            p.setPen(QColor("#8a93a5"))
            p.drawText(QRectF(KEYS_WIDTH, 0, roll_w, h), Qt.AlignmentFlag.AlignCenter,
                       "Play a phrase into Antiphon In: your notes in blue, the answer in orange")
        p.end()
