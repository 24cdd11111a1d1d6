"""Held-out figures: NLL per event (nats) and next-event accuracy under the grammar mask, per frame for
JSB data; for a style or for the variable-order Markov baseline fit on the same data's train split."""
from __future__ import annotations

from pathlib import Path

import numpy as np

from antiphon.engine.style import atomic_write_bytes, load_style, pack, resolve_style, unpack
from antiphon.engine.tokens import transpose_tokens

from .data import Split
from .scoring import style_token_log_probs, summarize
from .train import pick_device


def _figures(logps: list[np.ndarray], hits: list[np.ndarray], split: Split) -> dict:
    out = summarize(logps, hits)
    if split.frames is not None and sum(split.frames):
        scored = [lp[:n] for lp, n, f in zip(logps, split.scored, split.frames) if f]
        out["nll_per_frame"] = float(-sum(x.sum() for x in scored) / sum(split.frames))
        out["frames"] = int(sum(split.frames))
    return out


def score_style(style_name: str, split: Split, device: str = "auto", memory: bool = True) -> dict:
    """The style's figures on `split`, with its session memory (if it has one) unless memory=False."""
    dev = pick_device(device)
    style = load_style(style_name, str(dev))
    logps, hits = [], []
    for tokens, positions in split.pieces:
        lp, hit = style_token_log_probs(style, tokens, positions, dev, memory)
        logps.append(lp)
        hits.append(hit)
    out = _figures(logps, hits, split)
    if style.is_ensemble:
        out["members"] = [{"weight": m.weight, "shift": m.shift,
                           "memory": m.memory.to_dict() if m.memory and memory else None} for m in style.members]
    else:
        out["memory"] = style.memory.to_dict() if style.memory and memory else None
    return out


def score_band(style_name: str, split: Split, device: str = "auto") -> dict:
    """How well the style predicts a band's notes beside a player's: in each piece of several parts the top
    part is the player and the others the band (training.roles); the NLL per event of the band's tokens
    (note-ons, note-offs, velocities), read with the roles named and with nobody named (the same figure
    for a style without the role input)."""
    from antiphon.engine.model import player_sounding
    from antiphon.engine.tokens import ROLE_BAND

    from .roles import roles_for
    from .scoring import masked_scores, stream_log_probs

    dev = pick_device(device)
    style = load_style(style_name, str(dev))
    if style.is_ensemble:
        raise ValueError(f"{style_name}: an ensemble; --band scores one model")
    named, unnamed, pieces = [], [], 0
    for (tokens, positions), voices in zip(split.pieces, split.voices):
        if voices is None:
            continue
        roles = roles_for(voices, int(voices[voices >= 0].min()))
        band = roles[1:] == ROLE_BAND
        plain = masked_scores(stream_log_probs(style.model, tokens, positions, dev, memory=style.memory), tokens)[0]
        unnamed.append(plain[band])
        if style.config.role_input:
            lp = stream_log_probs(style.model, tokens, positions, dev, memory=style.memory, roles=roles,
                                  player=player_sounding(tokens, roles))
            named.append(masked_scores(lp, tokens)[0][band])
        else:
            named.append(plain[band])
        pieces += 1
    if not pieces:
        raise ValueError("--band needs pieces of several parts (MusicXML, ABC, kern or music21 corpus scores)")
    events = int(sum(len(x) for x in named))
    return {"band": {"pieces": pieces, "events": events, "role_input": style.config.role_input,
                     "nll_per_event_named": float(-sum(x.sum() for x in named) / events),
                     "nll_per_event_unnamed": float(-sum(x.sum() for x in unnamed) / events)}}


def augmented(pieces, transpose: int) -> list[np.ndarray]:
    out = []
    for tokens, _ in pieces:
        for k in range(-transpose, transpose + 1):
            shifted = transpose_tokens(tokens, k)
            if shifted is not None:
                out.append(shifted)
    return out


def score_markov(data: dict[str, Split], split: str, transpose: int = 6) -> dict:
    """Fit on train (with the same transposition augmentation the LSTM trains with), choose the order on
    valid, score `split`."""
    from .markov import MarkovModel

    train = augmented(data["train"].pieces, transpose)
    valid = [t for t, _ in data["valid"].pieces]
    model = MarkovModel()
    if valid:
        choice = model.choose_order(train, valid, orders=(2, 4, 6, 8, 10, 12, 16))
    else:
        model.fit(train)
        choice = {"order": model.order}
    target = data[split]
    logps = [model.log_probs(np.asarray(t)) for t, _ in target.pieces]
    dists_hits = []
    for t, _ in target.pieces:
        d = model.distributions(np.asarray(t))
        dists_hits.append(d.argmax(axis=1) == np.asarray(t[1:]))
    out = _figures(logps, dists_hits, target)
    out["baseline"] = "markov"
    out["order"] = int(choice.get("order", model.order) if isinstance(choice, dict) else model.order)
    return out


def record_figures(style_path: Path, data: dict[str, Split], device: str = "auto") -> dict:
    """Scores the style on valid and test and writes the figures into its metadata."""
    figures = {name: score_style(str(style_path), data[name], device)
               for name in ("valid", "test") if data[name].pieces}
    path = resolve_style(str(style_path))
    tensors, meta = unpack(path.read_bytes(), str(path))
    meta["held_out"] = figures
    atomic_write_bytes(path, pack(tensors, meta))
    return figures
