"""Deterministic train/valid/test splits by a hash of each piece's key (~90/5/5).

The key names a piece the same way whichever DATA spec reached it: a file inside music21's corpus
folder is keyed by its path relative to the corpus root (so `corpus:bach`, `corpus:broad` and the
corpus folder given as a path agree); any other file by its lower-cased file name. The N-th tune of a
multi-tune file adds ``#N``. JSB pieces keep the split of the JSON key they came from.
"""
from __future__ import annotations

import hashlib
from pathlib import Path

SPLITS = ("train", "valid", "test")
VALID_FRACTION = 0.05
TEST_FRACTION = 0.05


def _corpus_root() -> Path | None:
    try:
        import music21.corpus
    except ImportError:  # pragma: no cover - music21 is a dependency
        return None
    return Path(music21.corpus.__file__).resolve().parent


_ROOT: list[Path | None] = []


def piece_key(path: str | Path, tune: int | None = None) -> str:
    """The split key of a file (and of its `tune`-th tune, 1-based, for multi-tune files)."""
    if not _ROOT:
        _ROOT.append(_corpus_root())
    root = _ROOT[0]
    p = Path(path).resolve()
    key = None
    if root is not None:
        try:
            key = p.relative_to(root).as_posix()
        except ValueError:
            key = None
    if key is None:
        key = p.name.lower()
    return key if tune is None else f"{key}#{tune}"


def split_fraction(key: str) -> float:
    """A uniform number in [0, 1) from the key's sha1."""
    return int.from_bytes(hashlib.sha1(key.encode("utf-8")).digest()[:8], "big") / 2.0**64


def assign_split(key: str) -> str:
    u = split_fraction(key)
    if u < TEST_FRACTION:
        return "test"
    if u < TEST_FRACTION + VALID_FRACTION:
        return "valid"
    return "train"


# ---------------------------------------------------------------------------------------------- small data
# The hash split is a contract: a big corpus keeps it exactly. Only when it leaves a split empty does a
# small set of pieces get the small-data rule instead.
MIN_PIECES_TO_HOLD_OUT = 10  # with fewer pieces nothing is held out: every piece trains
# A held-out split below this many events gives noisy figures, and no session memory is chosen on it: a
# memory chosen on 1-3 of corpus:bach's valid chorales (up to ~2,100 events) made the other valid chorales
# up to 0.107 nats/event worse (40 random draws each), one chosen on 4-8 (2,600-5,700 events) at most 0.052.
SMALL_SPLIT_EVENTS = 3000


def small_data_splits(keys: list[str], splits: list[str]) -> tuple[list[str], str | None]:
    """The splits of one prepared set of hash-split pieces, with the small-data rule applied where the
    hash split leaves train, valid or test empty; and a line saying what the rule did (None: nothing).

    10 or more pieces: each empty held-out split takes one piece from train, the train pieces whose
    hash is lowest (the held-out ranges are the lowest hashes), test first, then valid.
    Fewer than 10: every piece trains (one held-out piece would be all noise and a tenth of the data)."""
    if not keys or all(s in splits for s in SPLITS):
        return list(splits), None
    n = len(keys)
    if n < MIN_PIECES_TO_HOLD_OUT:
        if all(s == "train" for s in splits):
            return list(splits), (f"only {n} piece{'s' if n > 1 else ''}: all train, none held out "
                                  f"(valid and test need {MIN_PIECES_TO_HOLD_OUT} or more pieces)")
        return ["train"] * n, (f"only {n} pieces: all train, none held out (valid and test need "
                               f"{MIN_PIECES_TO_HOLD_OUT} or more pieces; the hash split had "
                               f"{', '.join(f'{splits.count(s)} {s}' for s in SPLITS)})")
    out = list(splits)
    train = sorted((i for i, s in enumerate(out) if s == "train"), key=lambda i: split_fraction(keys[i]))
    moved = []
    for split in ("test", "valid"):
        if split not in out and len(train) > 1:
            out[train.pop(0)] = split
            moved.append(split)
    if not moved:
        return out, None
    return out, (f"{n} pieces and the hash split left {' and '.join(moved)} empty: moved one train piece to each "
                 f"(small-data rule), now {', '.join(f'{out.count(s)} {s}' for s in SPLITS)}")
