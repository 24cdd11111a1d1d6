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
