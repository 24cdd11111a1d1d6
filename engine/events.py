"""Notes in musical time: ticks at 24 per quarter note, the resolution of MIDI beat clock."""
from __future__ import annotations

from dataclasses import dataclass

TICKS_PER_QUARTER = 24


@dataclass(frozen=True, order=True)
class Note:
    start: int  # tick of the note-on
    end: int  # tick of the note-off, > start
    pitch: int  # MIDI note number 0..127
    velocity: int = 80  # 1..127

    @property
    def duration(self) -> int:
        return self.end - self.start


@dataclass(frozen=True)
class Meter:
    numerator: int = 4
    denominator: int = 4

    @property
    def ticks_per_beat(self) -> int:
        return TICKS_PER_QUARTER * 4 // self.denominator

    @property
    def ticks_per_bar(self) -> int:
        return self.ticks_per_beat * self.numerator

    @classmethod
    def parse(cls, text: str) -> "Meter":
        """'4/4', '3/4', '6/8' ... -> Meter; raises ValueError with the reason."""
        try:
            num, den = (int(x) for x in text.split("/"))
        except ValueError:
            raise ValueError(f"meter must look like 4/4, got {text!r}") from None
        if num < 1 or den not in (1, 2, 4, 8, 16) or cls(num, den).ticks_per_bar > 192:
            raise ValueError(f"unsupported meter {text!r} (bars up to 8 quarters, denominator 1..16)")
        return cls(num, den)

    def __str__(self) -> str:
        return f"{self.numerator}/{self.denominator}"


def seconds_to_ticks(seconds: float, bpm: float) -> float:
    return seconds * bpm / 60.0 * TICKS_PER_QUARTER


def ticks_to_seconds(ticks: float, bpm: float) -> float:
    return ticks / TICKS_PER_QUARTER * 60.0 / bpm
