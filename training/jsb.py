"""JSB Chorales at quarter-note resolution (Boulanger-Lewandowski's split), scored per frame.

A piece is a list of frames (one per quarter note), a frame the MIDI pitches sounding in it; a pitch
present in consecutive frames is one held note. A frame's log-likelihood is that of the tokens that
encode it after the previous frame (note-offs, note-ons, the time-shift to the next frame), so the
tokens up to the shift that reaches the end of the last frame are scored, and nothing after it.
"""
from __future__ import annotations

import json
from pathlib import Path

from antiphon.engine.events import TICKS_PER_QUARTER, Note
from antiphon.engine.tokens import DEFAULT_VELOCITY

SPLITS = ("train", "valid", "test")


def frames_to_notes(frames: list[list[int]]) -> list[Note]:
    notes = []
    open_at: dict[int, int] = {}
    for t, frame in enumerate(frames + [[]]):
        now = {int(p) for p in frame}
        for p in [p for p in open_at if p not in now]:
            notes.append(Note(open_at.pop(p) * TICKS_PER_QUARTER, t * TICKS_PER_QUARTER, p, DEFAULT_VELOCITY))
        for p in sorted(now - set(open_at)):
            open_at[p] = t
    return sorted(notes)


def read_jsb(path: str | Path) -> dict[str, list[list[list[int]]]]:
    """{split: [piece frames, ...]} for whichever of train/valid/test the file holds."""
    data = json.loads(Path(path).read_text())
    if not isinstance(data, dict) or not any(k in data for k in SPLITS):
        raise ValueError(f"{path}: expected a JSON object with keys among {SPLITS}")
    return {k: data[k] for k in SPLITS if k in data}


def scored_length(tokens, n_frames: int) -> int:
    """How many tokens after BOS encode the piece's frames: up to the shift that reaches its end."""
    from antiphon.engine.tokens import Grammar, TIME_SHIFT, VELOCITY

    g = Grammar()
    end = n_frames * TICKS_PER_QUARTER
    for i, tok in enumerate(tokens):
        g.apply(int(tok))
        if TIME_SHIFT <= tok < VELOCITY and g.tick >= end:
            return i
    raise ValueError("token sequence ends before the piece's last frame")


def encode_piece(frames: list[list[int]]):
    """(tokens, positions) of a piece, running to the end of its last frame even if that is silent."""
    import numpy as np

    from antiphon.engine.tokens import Grammar, encode_notes, positions_for, shift_tokens

    tokens, _ = encode_notes(frames_to_notes(frames))
    g = Grammar()
    for tok in tokens:
        g.apply(int(tok))
    tail = shift_tokens(len(frames) * TICKS_PER_QUARTER - g.tick)
    tokens = np.concatenate([tokens, np.asarray(tail, dtype=np.int16)]).astype(np.int16)
    return tokens, positions_for(tokens)
