"""The accompaniment benchmark: held-out melodies played into `--mode accompany` on fake time, and what
Antiphon plays under them measured beside what the music's own other parts play.

    chorales  the soprano lines of held-out Bach chorales: overlap-weighted consonance of the
              accompaniment with the sounding soprano note, and coverage (the share of the line during
              which it sounds), for Bach's own alto, tenor and bass, for Antiphon predicting a beat ahead
              (before it listened within the beat) and for Antiphon as shipped: reacting in the engine
              (`shipped`), and with the reaction armed ahead and played at the player's note, as JACK's
              native client does (`at_the_note`)
    folk      held-out folk tunes: the share of the accompaniment's notes in the tune's key, beside the
              share of the tune's own notes
"""
from __future__ import annotations

import time
from dataclasses import replace

import numpy as np

from antiphon.engine.answer_measures import consonance, coverage, key_fit, key_of_notes
from antiphon.engine.events import Meter, Note
from antiphon.engine.fake_time import simulate
from antiphon.engine.reading import score_notes
from antiphon.engine.session import ACCOMPANY, Session, SessionParams

from .sources import _corpus_files, load_pieces
from .splits import assign_split, piece_key


def chorale_lines(split: str = "test", limit: int = 16) -> list[tuple[str, list[Note], list[Note], Meter]]:
    """(name, soprano, alto + tenor + bass, meter) of held-out four-part chorales."""
    from music21 import converter

    out = []
    for path in _corpus_files("bach"):
        if assign_split(piece_key(path)) != split:
            continue
        try:
            parts = list(converter.parse(str(path)).parts)
            if len(parts) != 4:
                continue
            soprano, meter = score_notes(parts[0])
            lower = [n for p in parts[1:] for n in score_notes(p)[0]]
        except Exception:  # noqa: BLE001 - a piece music21 cannot read is left out
            continue
        if soprano:
            out.append((path.stem, sorted(soprano), sorted(lower), meter))
        if len(out) >= limit:
            break
    return out


def accompany(runtime, melody: list[Note], meter: Meter, params: SessionParams, seed: int,
              reflexes: bool = False) -> list[Note]:
    """`reflexes`: as on JACK's native client, the reaction armed ahead sounds at the player's note."""
    session = Session(runtime, meter, replace(params, mode=ACCOMPANY), seed=seed)
    return simulate(session, melody, max(n.end for n in melody) + meter.ticks_per_bar, reflexes=reflexes)


def _weighted(rows: list[tuple[float, int]]) -> float:
    total = sum(w for _, w in rows)
    return round(sum(c * w for c, w in rows) / total, 4) if total else 1.0


def accompany_benchmark(style, split: str = "test", seeds: int = 3, chorales: int = 16, tunes: int = 40,
                        params: SessionParams = SessionParams(), log=None) -> dict:
    runtime = style.runtime()
    t0 = time.perf_counter()
    lines = chorale_lines(split, chorales)
    # shipped: reacting in the engine (python-rtmidi, ALSA); at_the_note: the reaction armed ahead in JACK's
    # native client and played at the player's note, the engine playing on from it
    configs = {"before": (replace(params, react=False), False), "shipped": (params, False), "at_the_note": (params, True)}
    result: dict = {"style": style.name, "split": split, "seeds": seeds, "voicing": params.voicing,
                    "comp": params.comp, "chorales": {"pieces": len(lines)}}
    bach = [consonance(sop, low) for _, sop, low, _ in lines]
    result["chorales"]["bach"] = {"consonance": _weighted(bach),
                                  "coverage": round(float(np.mean([coverage(s, l) for _, s, l, _ in lines])), 4)}
    for name, (cfg, armed) in configs.items():
        cons, covs = [], []
        for _, sop, _, meter in lines:
            for seed in range(seeds):
                band = accompany(runtime, sop, meter, cfg, seed, reflexes=armed)
                cons.append(consonance(sop, band))
                covs.append(coverage(sop, band))
        result["chorales"][name] = {"consonance": _weighted(cons), "coverage": round(float(np.mean(covs)), 4)}
        if log:
            log(f"chorales {name}: {time.perf_counter() - t0:.0f} s")
    pieces, _ = load_pieces(["corpus:folk"], jobs=1, split=split)
    pieces = [p for p in pieces if len(p.notes) >= 8][:tunes]
    own, band_fit = [], {name: [] for name in configs}
    for piece in pieces:
        melody = sorted(piece.notes)
        key = key_of_notes(melody)
        own.append(key_fit(melody, key))
        for name, (cfg, armed) in configs.items():
            for seed in range(seeds):
                band_fit[name].append(key_fit(accompany(runtime, melody, piece.meter, cfg, seed, reflexes=armed), key))
    result["folk"] = {"tunes": len(pieces), "tune_in_key": round(float(np.mean(own)), 4),
                      **{f"{name}_in_key": round(float(np.mean(v)), 4) for name, v in band_fit.items()}}
    result["seconds"] = round(time.perf_counter() - t0, 1)
    return result
