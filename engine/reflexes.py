"""The accompaniment's reflexes: its reaction to each pitch the player may strike next, chosen before the note.

The session reacts to the player's note within the tick, but only once the note has reached Python: a few
milliseconds, more on a busy machine. An accompanist who hears the melody answers at once. The port layer
can too, if the answer is chosen ahead: `choose_reflexes` chooses, for every pitch the player might strike
in the coming ticks (until the band's next event, while the stream it continues stays the same), which of
the band's held notes would clash and end, and which one note comes in: consonant with the player's note,
in the voicing, in key, not already sounding, drawn from the model's own distribution at that point of the
stream; it must come in where the band would otherwise sound nothing, and elsewhere it comes in as often as
the model prefers a new note to going on. The engine then plays on from what was heard (Session.note_on's
`reflex`): a reaction the stream cannot take is ended at once, and one that came in may grow into a chord.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .tokens import N_PITCHES, NOTE_OFF, NOTE_ON, TIME_SHIFT

MESSAGES = 8  # per pitch: what the port layer holds for one reaction


@dataclass(frozen=True)
class Reflexes:
    """Valid for a player's note-on at stream ticks first_tick..last_tick (inclusive). `reactions[p]`: the
    band's (pitch, velocity) messages for a note-on of pitch p, note-offs (velocity 0) first."""

    first_tick: int
    last_tick: int
    reactions: dict[int, tuple[tuple[int, int], ...]]


def choose_reflexes(logits: np.ndarray, held: list[int], band_pitches: np.ndarray, consonant_classes: np.ndarray,
                    voicing: str, velocity: int, temperature: float, rng: np.random.Generator,
                    withdrawn: list[int] = ()) -> dict:
    """player's pitch -> ((band pitch, velocity), ...) for all 128 pitches. `logits`: the model's next token at
    the point the reaction continues; `held`: the band's sounding notes there; `band_pitches`: where the band
    may play whatever the player strikes (key, range); `withdrawn`: notes the band starts on the table's last
    tick, which a player's note on that tick replaces (they may have gone out with its 0xF8 just before: each
    reaction ends them first; the port layer skips the note-off of a note that is not sounding)."""
    pitches = np.arange(N_PITCHES)
    consonant = consonant_classes[(pitches[None, :] - pitches[:, None]) % 12]  # [player's pitch, band pitch]
    if voicing == "below":
        voiced = pitches[None, :] < pitches[:, None]
    elif voicing == "above":
        voiced = pitches[None, :] > pitches[:, None]
    else:
        voiced = np.ones((N_PITCHES, N_PITCHES), dtype=bool)
    held = sorted(int(q) for q in held)
    clashes = ~consonant[:, held] if held else np.zeros((N_PITCHES, 0), dtype=bool)
    allowed = consonant & voiced & band_pitches[None, :]
    allowed[:, held] = False
    allowed[pitches, pitches] = False
    z = logits.astype(np.float64) / max(temperature, 1e-3)
    z -= z.max()
    prob = np.exp(z)
    prob /= prob.sum()
    on_weight = prob[NOTE_ON:NOTE_OFF][None, :] * allowed
    total = on_weight.sum(axis=1)
    must = clashes.all(axis=1)  # nothing held stays: the band comes in
    # whether a note comes in: as likely as the model's next events at this tick are note-ons rather than the
    # time moving on (the note-offs come first in a tick; which note-ons it expected depends on the note it
    # has not heard yet, so among them the allowed ones are weighed by its preference)
    rest = np.where(must, 0.0, np.clip(1.0 - prob[NOTE_ON:TIME_SHIFT].sum(), 0.0, None))
    if temperature <= 1e-3:
        best = on_weight.argmax(axis=1)
        comes_in = (total > 0) & (on_weight[pitches, best] >= rest)
    else:
        u = rng.random(N_PITCHES) * (total + rest)
        best = np.minimum((np.cumsum(on_weight, axis=1) < u[:, None]).sum(axis=1), N_PITCHES - 1)
        comes_in = (total > 0) & (u < total)
    out = {}
    for p in range(N_PITCHES):
        offs = [(int(q), 0) for q in withdrawn] + [(q, 0) for k, q in enumerate(held) if clashes[p, k]]
        ons = [(int(best[p]), int(velocity))] if comes_in[p] else []
        out[p] = tuple(offs[:MESSAGES - len(ons)] + ons)
    return out
