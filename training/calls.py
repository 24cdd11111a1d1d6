"""Held-out calls and their real continuations: the first bars of real pieces, to be answered, and the
bars that follow them in the piece, to measure answers against.

    bach    soprano lines of the Bach chorales in music21's corpus (corpus:bach's split)
    folk    Essen folk tunes (corpus:folk's split)
    fiddle  fiddle and Irish tunes (corpus:fiddle: ryansMammoth, oneills1850): music no shipped style
            was trained on

Splits are the data's own (a hash of each piece's path): fit on `valid`, report on `test`. A piece gives
up to CUTS calls, one every `bars` bars (the first bars, then the next ones, while a continuation follows).
"""
from __future__ import annotations

from dataclasses import dataclass

from antiphon.engine.events import Meter, Note
from antiphon.engine.reading import part_phrase, score_notes

from .sources import _corpus_files, load_pieces
from .splits import assign_split, piece_key

CALL_SETS = ("bach", "folk", "fiddle")
CUTS = 3


@dataclass
class HeldOutCall:
    name: str
    call: list[Note]  # from tick 0, on the piece's bar grid
    continuation: list[Note]  # the bars after the call, at their ticks on the same grid
    meter: Meter
    continuation_start: int = 0  # the tick the continuation's first bar begins on


def cut(name: str, notes: list[Note], meter: Meter, bars: int, continuation_bars: int,
        min_notes: int = 4, first_bar: int = 0) -> HeldOutCall | None:
    """Bars `first_bar` .. + `bars` as the call (from tick 0) and the next `continuation_bars` as its
    continuation, or None when the piece is too short or too sparse for either."""
    call = part_phrase(notes, meter, first_bar, bars)
    rest = part_phrase(notes, meter, first_bar + bars, continuation_bars)
    if len(call) < min_notes or len(rest) < 2:
        return None
    shift = bars * meter.ticks_per_bar
    label = name if not first_bar else f"{name}@{first_bar}"
    return HeldOutCall(label, call, [Note(n.start + shift, n.end + shift, n.pitch, n.velocity) for n in rest], meter,
                       shift)


def cuts(name: str, notes: list[Note], meter: Meter, bars: int, continuation_bars: int) -> list[HeldOutCall]:
    """Up to CUTS calls of one piece, `bars` bars apart."""
    out = []
    for i in range(CUTS):
        held = cut(name, notes, meter, bars, continuation_bars, first_bar=i * bars)
        if held is None:
            break
        out.append(held)
    return out


def _bach_sopranos(split: str, bars: int, continuation_bars: int, limit: int | None) -> list[HeldOutCall]:
    from music21 import converter

    out = []
    for path in _corpus_files("bach"):
        if assign_split(piece_key(path)) != split:
            continue
        try:
            score = converter.parse(str(path))
            parts = list(score.parts)
            if len(parts) < 2:
                continue
            notes, meter = score_notes(parts[0])
        except Exception:  # noqa: BLE001 - a piece music21 cannot read is left out, as prepare does
            continue
        out += cuts(path.stem, notes, meter, bars, continuation_bars)
        if limit and len(out) >= limit:
            break
    return out[:limit] if limit else out


def _tunes(spec: str, split: str, bars: int, continuation_bars: int, limit: int | None) -> list[HeldOutCall]:
    pieces, _ = load_pieces([spec], jobs=1, split=split)
    out = []
    for piece in pieces:
        out += cuts(piece.path.rsplit("/", 1)[-1], sorted(piece.notes), piece.meter, bars, continuation_bars)
        if limit and len(out) >= limit:
            break
    return out[:limit] if limit else out


def held_out_calls(name: str, split: str = "test", bars: int = 4, continuation_bars: int = 2,
                   limit: int | None = None) -> list[HeldOutCall]:
    """A named call set (CALL_SETS), or any DATA spec (a folder of your own music: every part of a piece
    is the call)."""
    if name not in CALL_SETS:
        return _tunes(name, split, bars, continuation_bars, limit)
    if name == "bach":
        return _bach_sopranos(split, bars, continuation_bars, limit)
    return _tunes(f"corpus:{name}", split, bars, continuation_bars, limit)
