"""Reading music into notes: MIDI files (symusic, mido when symusic refuses a file), music21 scores and
corpus phrases; notes in ticks at 24 per quarter and the first meter. Parser failures become plain reasons
(`reason`), the ones `prepare` reports and every command prints.

Pure: used offline (training/) and live (the demo, the answer benchmark); music21 and symusic are imported
only when a reader needs them.
"""
from __future__ import annotations

import numpy as np

from .events import TICKS_PER_QUARTER, Meter, Note
from .tokens import DEFAULT_VELOCITY

MAX_REASON = 300
MIDI_EXTENSIONS = (".mid", ".midi", ".kar")
SCORE_EXTENSIONS = (".musicxml", ".mxl", ".xml", ".krn", ".abc")  # read with music21
FORMATS = "MIDI (.mid .midi .kar), MusicXML (.musicxml .mxl .xml), Humdrum kern (.krn) and ABC (.abc)"

_PLAIN = (  # what the MIDI parsers say -> what a musician reads
    ("File size is less than", "empty or too short to be a MIDI file"),
    ("header is not MThd", "not a MIDI file (no MThd header)"),
    ("Unexpected EOF", "truncated MIDI file (ends inside a chunk)"),
    ("Invalid chunk length", "damaged MIDI file (a chunk runs past the end of the file)"),
    ("data byte must be in range", "damaged MIDI file (a message with a byte out of range)"),
)


def reason(exc: BaseException) -> str:
    """A parser's exception as a reason a musician reads; the parser's own words only where there is none."""
    message = str(exc).strip() or "no message"
    for needle, plain in _PLAIN:
        if needle in message:
            return plain
    return f"{type(exc).__name__}: {message}"[:MAX_REASON]


def meter_of(numerator: int, denominator: int) -> Meter:
    try:
        return Meter.parse(f"{int(numerator)}/{int(denominator)}")
    except (ValueError, TypeError):
        return Meter()


def _to_ticks(values: np.ndarray, tpq: int) -> np.ndarray:
    return np.floor(values.astype(np.float64) * TICKS_PER_QUARTER / tpq + 0.5).astype(np.int64)


def read_midi_symusic(path: str) -> tuple[list[Note], Meter]:
    import symusic

    score = symusic.Score(str(path))
    tpq = int(score.ticks_per_quarter)
    if tpq <= 0:
        raise ValueError(f"ticks per quarter is {tpq} (SMPTE time is not supported)")
    notes: list[Note] = []
    for track in score.tracks:
        if track.is_drum:
            continue
        arr = track.notes.numpy()
        if not len(arr["time"]):
            continue
        start = _to_ticks(arr["time"], tpq)
        end = np.maximum(_to_ticks(arr["time"] + arr["duration"], tpq), start + 1)
        for s, e, p, v in zip(start.tolist(), end.tolist(), arr["pitch"].tolist(), arr["velocity"].tolist()):
            if v > 0 and s >= 0:
                notes.append(Note(s, e, int(p), int(v)))
    sigs = sorted(score.time_signatures, key=lambda ts: ts.time)
    meter = meter_of(sigs[0].numerator, sigs[0].denominator) if sigs else Meter()
    return notes, meter


def read_midi_mido(path: str) -> tuple[list[Note], Meter]:
    import mido

    mid = mido.MidiFile(str(path))
    if mid.type == 2:
        raise ValueError("type 2 (asynchronous) MIDI files are not supported")
    tpq = int(mid.ticks_per_beat)
    if tpq <= 0:
        raise ValueError(f"ticks per quarter is {tpq} (SMPTE time is not supported)")
    notes: list[Note] = []
    meter_msg = None
    for track in mid.tracks:
        now = 0
        sounding: dict[tuple[int, int], list[tuple[int, int]]] = {}
        for msg in track:
            now += msg.time
            if msg.type == "time_signature" and (meter_msg is None or now < meter_msg[0]):
                meter_msg = (now, msg.numerator, msg.denominator)
            if msg.type not in ("note_on", "note_off") or msg.channel == 9:
                continue
            key = (msg.channel, msg.note)
            if msg.type == "note_on" and msg.velocity > 0:
                sounding.setdefault(key, []).append((now, msg.velocity))
            elif sounding.get(key):
                start, vel = sounding[key].pop(0)
                notes.append((start, now, msg.note, vel))
        for (_, pitch), opened in sounding.items():
            notes.extend((start, now, pitch, vel) for start, vel in opened)
    out = []
    for s, e, p, v in notes:
        s24 = int(np.floor(s * TICKS_PER_QUARTER / tpq + 0.5))
        e24 = max(int(np.floor(e * TICKS_PER_QUARTER / tpq + 0.5)), s24 + 1)
        out.append(Note(s24, e24, p, v))
    meter = meter_of(meter_msg[1], meter_msg[2]) if meter_msg else Meter()
    return out, meter


def read_midi(path: str) -> tuple[list[Note], Meter]:
    """symusic first; mido only when symusic refuses the file. Raises with symusic's reason if both do."""
    try:
        return read_midi_symusic(path)
    except Exception as first:  # noqa: BLE001 - any parser failure is a reason to try the other
        try:
            return read_midi_mido(path)
        except Exception:  # noqa: BLE001
            raise first from None


def score_notes(score) -> tuple[list[Note], Meter]:
    """A music21 Score (or Part) -> notes at 24 ticks per quarter and its first meter.

    Tied notes are merged here, part by part, in one pass (music21's stripTies does the same but is
    quadratic on long scores: minutes for a string quartet)."""
    notes, meter, _ = score_parts(score)
    return notes, meter


def score_parts(score) -> tuple[list[Note], Meter, list[int]]:
    """score_notes, plus each note's part: its index in the score's parts (0 = the first, the top voice
    in a chorale), 0 for every note of a score without parts."""
    from music21 import meter as m21meter, stream

    pad = 0.0
    first_measure = score.recurse().getElementsByClass(stream.Measure).first()
    if first_measure is not None and first_measure.paddingLeft:
        pad = float(first_measure.paddingLeft)  # a pickup bar: put the first downbeat on a bar line

    def tick(quarters: float) -> int:
        return int(np.floor((quarters + pad) * TICKS_PER_QUARTER + 0.5))

    parts = list(score.parts) if isinstance(score, stream.Score) else []
    notes: list[Note] = []
    voices: list[int] = []
    for index, part in enumerate(parts or [score]):
        before = len(notes)
        open_ties: dict[int, list[int]] = {}  # pitch -> [start, end] of a tied note still going on
        for el in part.flatten().notes:
            start, end = tick(float(el.offset)), tick(float(el.offset) + float(el.quarterLength))
            if end <= start:
                continue  # grace notes and other zero-length ornaments
            members = el.notes if el.isChord else [el]
            for member in members:
                pitch = int(member.pitch.midi)
                tie = member.tie.type if member.tie is not None else (el.tie.type if el.tie is not None else None)
                held = open_ties.get(pitch)
                if tie in ("stop", "continue") and held is not None and abs(held[1] - start) <= 1:
                    held[1] = end
                    if tie == "stop":
                        notes.append(Note(held[0], held[1], pitch, DEFAULT_VELOCITY))
                        del open_ties[pitch]
                    continue
                if held is not None:  # a tie that never stopped: close it where it got to
                    notes.append(Note(held[0], held[1], pitch, DEFAULT_VELOCITY))
                    del open_ties[pitch]
                if tie in ("start", "continue"):
                    open_ties[pitch] = [start, end]
                else:
                    notes.append(Note(start, end, pitch, DEFAULT_VELOCITY))
        notes.extend(Note(a, b, p, DEFAULT_VELOCITY) for p, (a, b) in open_ties.items())
        voices += [index] * (len(notes) - before)
    ts = score.recurse().getElementsByClass(m21meter.TimeSignature).first()
    meter = meter_of(ts.numerator, ts.denominator) if ts is not None else Meter()
    return notes, meter, voices


def read_music21(path: str, abc_text: str | None = None) -> tuple[list[Note], Meter]:
    notes, meter, _ = read_music21_parts(path, abc_text)
    return notes, meter


def read_music21_parts(path: str, abc_text: str | None = None) -> tuple[list[Note], Meter, list[int]]:
    """read_music21, plus each note's part (see score_parts)."""
    from music21 import converter, stream

    if abc_text is not None:
        parsed = converter.parseData(abc_text, format="abc")
    else:
        parsed = converter.parse(str(path))
    if isinstance(parsed, stream.Opus):
        scores = list(parsed.scores)
        if not scores:
            raise ValueError("music21 found an empty opus")
        parsed = scores[0]
    return score_parts(parsed)


def corpus_score(piece: str):
    """A music21 corpus piece (its first tune where the file holds many)."""
    from music21 import corpus

    score = corpus.parse(piece)
    if hasattr(score, "scores"):  # an Opus (an ABC file of many tunes)
        score = score.scores[0]
    return score


def part_phrase(notes: list[Note], meter: Meter, first_bar: int, bars: int, velocity: int = 90) -> list[Note]:
    """Bars `first_bar` .. first_bar + bars - 1 of `notes` (counted from the bar holding the first note),
    moved to start at tick 0; notes crossing the end are cut there."""
    if not notes:
        return []
    bar = meter.ticks_per_bar
    origin = (min(n.start for n in notes) // bar + first_bar) * bar
    end = origin + bars * bar
    return [Note(n.start - origin, min(n.end, end) - origin, n.pitch, velocity)
            for n in sorted(notes) if origin <= n.start < end]


def corpus_phrase(piece: str, part: int, bars: int) -> tuple[list[Note], Meter]:
    """The first `bars` bars of one part (0 = the top) of a music21 corpus piece, from tick 0, and its meter."""
    score = corpus_score(piece)
    parts = list(score.parts) or [score]
    notes, meter = score_notes(parts[min(part, len(parts) - 1)])
    if not notes:
        raise ValueError(f"{piece}: no notes")
    return part_phrase(notes, meter, 0, bars), meter
