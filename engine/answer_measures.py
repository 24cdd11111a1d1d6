"""How an answer relates to its call, measured: the terms the critic scores candidates by and the measures
the answer benchmark reads too (training/realism.py), and the accompaniment's consonance and coverage.

Notes are in ticks on the stream's bar grid (bar positions are tick % ticks_per_bar). The melody of a
passage is its skyline: the highest note starting at each onset tick.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .events import Meter, Note
from .sampler import key_of

LOOP_NOTES = 8  # a loop: this many melody notes in a row on two pitches or fewer
ECHO_NOTES = 6  # an echo: this many melody notes in a row copied from the call, pitches and rhythm


@dataclass(frozen=True)
class Key:
    tonic: int
    scale: tuple[int, ...]
    minor: bool

    @property
    def triad(self) -> tuple[int, int, int]:
        return (self.tonic, (self.tonic + (3 if self.minor else 4)) % 12, (self.tonic + 7) % 12)

    @property
    def name(self) -> str:
        names = ["C", "C#", "D", "Eb", "E", "F", "F#", "G", "Ab", "A", "Bb", "B"]
        return f"{names[self.tonic]} {'minor' if self.minor else 'major'}"


def pitch_class_weights(notes: list[Note]) -> np.ndarray:
    """Duration-weighted pitch-class histogram (12,)."""
    w = np.zeros(12)
    for n in notes:
        w[n.pitch % 12] += n.duration
    return w


def key_of_notes(notes: list[Note]) -> Key:
    """The Krumhansl-Schmuckler key of a passage (duration-weighted)."""
    tonic, scale = key_of(pitch_class_weights(notes))
    return Key(tonic, scale, (tonic + 3) % 12 in scale)


def melody(notes: list[Note]) -> list[Note]:
    """The skyline: the highest note at each onset tick, in time order."""
    top: dict[int, Note] = {}
    for n in notes:
        if n.start not in top or n.pitch > top[n.start].pitch:
            top[n.start] = n
    return [top[t] for t in sorted(top)]


def key_fit(notes: list[Note], key: Key) -> float:
    """Share of the notes whose pitch class is in the key's scale (1 for no notes)."""
    if not notes:
        return 1.0
    return float(np.mean([n.pitch % 12 in key.scale for n in notes]))


def pitch_class_kinship(call: list[Note], answer: list[Note], call_weights: np.ndarray | None = None) -> float:
    """Pearson r of the two duration-weighted pitch-class histograms (0 where one is flat or empty).
    `call_weights`: the call's histogram, if known."""
    a = pitch_class_weights(call) if call_weights is None else call_weights
    b = pitch_class_weights(answer)
    if a.std() == 0 or b.std() == 0:
        return 0.0
    return float(np.corrcoef(a, b)[0, 1])


def register_distance(call: list[Note], answer: list[Note], call_median: float | None = None) -> float:
    """Semitones between the median pitches (0 for an empty answer). `call_median`: the call's, if known."""
    if not call or not answer:
        return 0.0
    if call_median is None:
        call_median = median_pitch(call)
    return float(abs(median_pitch(answer) - call_median))


def median_pitch(notes: list[Note]) -> float:
    return float(np.median([n.pitch for n in notes]))


def onset_share(call: list[Note], answer: list[Note], meter: Meter, positions: set[int] | None = None) -> float:
    """Share of the answer's onsets at a bar position where the call also has an onset (1 for none).
    `positions`: the call's onset positions in the bar, if known."""
    bar = meter.ticks_per_bar
    if positions is None:
        positions = {n.start % bar for n in call}
    onsets = sorted({n.start for n in answer})
    if not onsets:
        return 1.0
    return float(np.mean([t % bar in positions for t in onsets]))


def density(notes: list[Note], span_ticks: int, meter: Meter) -> float:
    """Onsets per beat over a span."""
    return len({n.start for n in notes}) / max(span_ticks / meter.ticks_per_beat, 1e-9)


def polyphony(notes: list[Note]) -> float:
    """Mean number of notes sounding at each onset tick."""
    if not notes:
        return 0.0
    starts = np.array([n.start for n in notes])
    ends = np.array([n.end for n in notes])
    onsets = np.unique(starts)
    return float(np.mean(((starts <= onsets[:, None]) & (onsets[:, None] < ends)).sum(axis=1)))


def max_sounding(notes: list[Note]) -> int:
    """The most notes sounding at once (0 for none)."""
    edges = sorted([(n.start, 1) for n in notes] + [(n.end, -1) for n in notes], key=lambda e: (e[0], e[1]))
    most = now = 0
    for _, d in edges:
        now += d
        most = max(most, now)
    return most


def loops(notes: list[Note], length: int = LOOP_NOTES, line: list[Note] | None = None) -> bool:
    """The melody holds `length` notes in a row on two pitches or fewer (E-D#-E-D#...). `line`: the
    melody, if known (here and below)."""
    return longest_two_pitch_run(notes, line) >= length


def longest_two_pitch_run(notes: list[Note], line: list[Note] | None = None) -> int:
    """Melody notes in the longest run that uses two pitches or fewer (a repeated note counts too)."""
    line = [n.pitch for n in (melody(notes) if line is None else line)]
    best = start = 0
    for end in range(len(line)):
        while len(set(line[start:end + 1])) > 2:
            start += 1
        best = max(best, end - start + 1)
    return best


def longest_echo(call: list[Note], answer: list[Note], call_line: list[Note] | None = None,
                 line: list[Note] | None = None) -> int:
    """Melody notes in the longest run of the answer that copies a run of the call: the same pitches with
    the same time between onsets (counted in notes; 1 means no run of two)."""
    c = melody(call) if call_line is None else call_line
    a = melody(answer) if line is None else line
    if not c or not a:
        return 0
    cp = [n.pitch for n in c]
    ci = [c[i + 1].start - c[i].start for i in range(len(c) - 1)]
    ap = [n.pitch for n in a]
    ai = [a[i + 1].start - a[i].start for i in range(len(a) - 1)]
    where: dict[int, list[int]] = {}  # the call's melody notes by pitch
    for j, p in enumerate(cp):
        where.setdefault(p, []).append(j)
    best = 1 if set(ap) & set(cp) else 0
    run: dict[int, int] = {}  # run[j]: copied notes ending at answer i - 1, call j - 1 (intervals matching)
    for i in range(len(a)):
        new = {}
        for j in where.get(ap[i], ()):
            before = run.get(j, 0)
            new[j + 1] = v = before + 1 if i and j and before and ai[i - 1] == ci[j - 1] else 1
            best = max(best, v)
        run = new
    return best


def ends_on(notes: list[Note], key: Key, degrees: str = "stable", line: list[Note] | None = None) -> bool:
    """The last melody note is on the tonic (`tonic`) or a note of the tonic triad (`stable`)."""
    line = melody(notes) if line is None else line
    if not line:
        return False
    pc = line[-1].pitch % 12
    return pc == key.tonic if degrees == "tonic" else pc in key.triad


def ends_on_strong_beat(notes: list[Note], meter: Meter, line: list[Note] | None = None) -> bool:
    """The last onset falls on the bar's first beat or, in an even meter, on its middle."""
    line = melody(notes) if line is None else line
    if not line:
        return False
    pos = line[-1].start % meter.ticks_per_bar
    strong = {0}
    if meter.numerator % 2 == 0 and meter.numerator >= 4:
        strong.add(meter.ticks_per_bar // 2)
    elif meter.numerator % 3 == 0 and meter.numerator >= 6:
        strong.add(meter.ticks_per_bar // 2)
    return pos in strong


# ---------------------------------------------------------------------------------------------- accompaniment
CONSONANT = frozenset({0, 3, 4, 5, 7, 8, 9})  # unison/octave, thirds, fourth, fifth, sixths (pitch classes)


def consonant(a: int, b: int) -> bool:
    return (a - b) % 12 in CONSONANT


def consonance(player: list[Note], band: list[Note]) -> tuple[float, int]:
    """Overlap-weighted share of (band note, player note) pairs sounding together that form a consonant
    interval, and the total overlap in ticks it is weighed over."""
    player = sorted(player)
    good = total = 0
    for b in band:
        for p in player:
            if p.start >= b.end:
                break
            overlap = min(b.end, p.end) - max(b.start, p.start)
            if overlap > 0:
                total += overlap
                good += overlap if consonant(b.pitch, p.pitch) else 0
    return (good / total if total else 1.0), total


def coverage(player: list[Note], band: list[Note]) -> float:
    """Share of the player's span (first onset to last release) during which the band sounds."""
    if not player:
        return 0.0
    lo, hi = min(n.start for n in player), max(n.end for n in player)
    marks = np.zeros(hi - lo, dtype=bool)
    for b in band:
        a, z = max(b.start, lo), min(b.end, hi)
        if z > a:
            marks[a - lo:z - lo] = True
    return float(marks.mean()) if len(marks) else 0.0
