"""Who plays what, while training a model that reads roles (ModelConfig.role_input).

A piece of several parts is read as one stream. For each training window, one of its parts is taken as
the player and the others as the band (tokens.ROLE_PLAYER / ROLE_BAND), or the window is read with
nobody named (ROLE_NONE), as a call and its answer are: half the windows each way. The top part (a
chorale's soprano) is the player in half of the named windows, any part in the others, so a model
learns to accompany a melody from below and also a bass or an inner voice from around it.
"""
from __future__ import annotations

import random

import numpy as np

from antiphon.engine.tokens import ROLE_BAND, ROLE_NONE, ROLE_PLAYER

NAMED_SHARE = 0.5  # windows read with a player and a band
TOP_SHARE = 0.5  # of those, windows whose player is the top part


def assign_roles(voices: np.ndarray | None, rng: random.Random) -> np.ndarray | None:
    """Token voices (int8, -1 where no part plays) -> token roles (int64), or None: nobody named."""
    if voices is None or rng.random() >= NAMED_SHARE:
        return None
    present = np.unique(voices[voices >= 0])
    if len(present) < 2:
        return None
    player = int(present[0]) if rng.random() < TOP_SHARE else int(rng.choice(list(present)))
    return roles_for(voices, player)


def roles_for(voices: np.ndarray, player: int) -> np.ndarray:
    """The roles of a stream whose part `player` is the player's and every other part the band's."""
    return np.where(voices < 0, ROLE_NONE, np.where(voices == player, ROLE_PLAYER, ROLE_BAND)).astype(np.int64)
