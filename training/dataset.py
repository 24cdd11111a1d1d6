"""The prepared cache: token arrays per split, written once, read by train and eval.

Layout of a prepared folder:
    train.npz, valid.npz, test.npz   tokens (int16, every piece concatenated, each starting with BOS),
                                     positions (uint8, bar position after each token), voices (int8, the
                                     part each note token belongs to, -1 for time shifts, BOS and pieces
                                     of one part), offsets (int64, piece i is
                                     tokens[offsets[i]:offsets[i+1]]), keys, paths, meters
    manifest.json                    specs, counts, skipped files, vocabulary, tokenizer version
Every file is written atomically (temp file, fsync, os.replace); the manifest is written last, so a
folder with a manifest is complete.
"""
from __future__ import annotations

import hashlib
import io
import json
import os
import time
from pathlib import Path

import numpy as np

from antiphon.engine.atomic import atomic_write_bytes
from antiphon.engine.tokens import VOCABULARY, encode_voices

from .sources import EXTENSIONS, Piece, load_pieces
from .splits import SMALL_SPLIT_EVENTS, SPLITS, small_data_splits

FORMAT_VERSION = 2  # 2: voices
MANIFEST = "manifest.json"
JSB_KEY = "jsb:"  # the keys of JSB pieces (training.sources.read_jsb_quarter): split by the file, not the hash


def tokenizer_version() -> str:
    """A fingerprint of everything that decides the cached tokens: the vocabulary, the tokenizer's and
    the readers' source code, and this file format."""
    h = hashlib.sha1(json.dumps(VOCABULARY, sort_keys=True).encode())
    h.update(str(FORMAT_VERSION).encode())
    from antiphon.engine import events, reading, tokens

    from . import sources, splits

    for mod in (tokens, events, reading, sources, splits):
        h.update(Path(mod.__file__).read_bytes())
    return h.hexdigest()[:16]


# ---------------------------------------------------------------------------------------------- writing

def _atomic_write(path: Path, write) -> None:
    """write(fileobj) into memory, then engine.atomic's temp file + fsync + rename onto `path`."""
    buf = io.BytesIO()
    write(buf)
    atomic_write_bytes(path, buf.getvalue())


def _write_split(path: Path, pieces: list[Piece]) -> dict:
    toks, poss, vois, lengths = [], [], [], []
    for piece in pieces:
        t, p, v = encode_voices(piece.notes, piece.voices if piece.voices is not None else [-1] * len(piece.notes),
                                piece.meter)
        toks.append(t)
        poss.append(p)
        vois.append(v)
        lengths.append(len(t))
    offsets = np.zeros(len(pieces) + 1, dtype=np.int64)
    offsets[1:] = np.cumsum(lengths, dtype=np.int64)
    arrays = dict(
        tokens=np.concatenate(toks).astype(np.int16) if toks else np.zeros(0, np.int16),
        positions=np.concatenate(poss).astype(np.uint8) if poss else np.zeros(0, np.uint8),
        voices=np.concatenate(vois).astype(np.int8) if vois else np.zeros(0, np.int8),
        offsets=offsets,
        keys=np.array([p.key for p in pieces], dtype=np.str_),
        paths=np.array([p.path for p in pieces], dtype=np.str_),
        meters=np.array([str(p.meter) for p in pieces], dtype=np.str_),
    )
    _atomic_write(path, lambda f: np.savez(f, **arrays))
    return {"pieces": len(pieces), "tokens": int(offsets[-1]), "events": int(offsets[-1]) - len(pieces)}


def prepare(specs: list[str], out_dir: str | Path, jobs: int | None = None, corpus_limit: int | None = None,
            progress: bool = False) -> dict:
    """Reads `specs`, tokenises every piece, writes the per-split arrays and the manifest to `out_dir`.

    Returns {"files": pieces kept, "events": tokens excluding BOS, "seconds", "skipped", "splits": per
    split {"pieces", "tokens", "events"}, "warnings": lines about small or empty splits, "out": folder}.
    """
    t0 = time.perf_counter()
    out = Path(out_dir)
    pieces, skipped = load_pieces(list(specs), jobs=jobs, corpus_limit=corpus_limit, progress=progress)
    warnings = apply_small_data_rule(pieces)
    by_split: dict[str, list[Piece]] = {s: [] for s in SPLITS}
    for piece in pieces:
        by_split[piece.split].append(piece)
    counts = {s: _write_split(out / f"{s}.npz", by_split[s]) for s in SPLITS}
    if any(not p.key.startswith(JSB_KEY) for p in pieces):
        warnings += small_split_warnings(counts)
    seconds = time.perf_counter() - t0
    manifest = {
        "format": FORMAT_VERSION,
        "tokenizer_version": tokenizer_version(),
        "specs": list(specs),
        "corpus_limit": corpus_limit,
        "files": len(pieces),
        "events": sum(c["events"] for c in counts.values()),
        "seconds": round(seconds, 3),
        "splits": counts,
        "skipped": skipped,
        "warnings": warnings,
        "vocabulary": VOCABULARY,
    }
    data = json.dumps(manifest, indent=1).encode()
    _atomic_write(out / MANIFEST, lambda f: f.write(data))
    return {"files": manifest["files"], "events": manifest["events"], "seconds": seconds,
            "skipped": skipped, "splits": counts, "warnings": warnings, "out": str(out)}


def apply_small_data_rule(pieces: list[Piece]) -> list[str]:
    """training.splits.small_data_splits on the hash-split pieces (JSB pieces keep their file's split);
    returns the line saying what it did, if anything."""
    hashed = [p for p in pieces if not p.key.startswith(JSB_KEY)]
    splits, line = small_data_splits([p.key for p in hashed], [p.split for p in hashed])
    for piece, split in zip(hashed, splits):
        piece.split = split
    return [line] if line else []


def small_split_warnings(counts: dict) -> list[str]:
    """A line for each held-out split too small to judge a model by."""
    out = []
    for split in ("valid", "test"):
        c = counts[split]
        if 0 < c["events"] < SMALL_SPLIT_EVENTS:
            out.append(f"the {split} split is small ({c['pieces']} piece{'s' if c['pieces'] != 1 else ''}, "
                       f"{c['events']} events, under {SMALL_SPLIT_EVENTS}): figures on it are noisy"
                       + ("; train will not tune a session memory on it" if split == "valid" else ""))
    return out


# ---------------------------------------------------------------------------------------------- reading

def read_manifest(out_dir: str | Path) -> dict:
    with open(Path(out_dir) / MANIFEST) as f:
        return json.load(f)


def load_split_arrays(out_dir: str | Path, split: str) -> dict[str, np.ndarray]:
    """The raw arrays of one split: tokens, positions, offsets, keys, paths, meters."""
    if split not in SPLITS:
        raise ValueError(f"split must be one of {', '.join(SPLITS)}, got {split!r}")
    with np.load(Path(out_dir) / f"{split}.npz", allow_pickle=False) as z:
        return {k: z[k] for k in z.files}


def load_split(out_dir: str | Path, split: str) -> list[tuple[np.ndarray, np.ndarray]]:
    """One (tokens int16, positions uint8) pair per piece of `split`, each starting with BOS."""
    a = load_split_arrays(out_dir, split)
    off = a["offsets"]
    return [(a["tokens"][off[i]:off[i + 1]], a["positions"][off[i]:off[i + 1]]) for i in range(len(off) - 1)]


def load_split_voices(out_dir: str | Path, split: str) -> list[np.ndarray | None]:
    """Each piece's token voices (int8, see the layout above), None for a piece of one part."""
    a = load_split_arrays(out_dir, split)
    off = a["offsets"]
    out = []
    for i in range(len(off) - 1):
        v = a["voices"][off[i]:off[i + 1]]
        out.append(v if (v >= 0).any() else None)
    return out


# ---------------------------------------------------------------------------------------------- cache

def default_cache_root() -> Path:
    return Path(os.environ.get("ANTIPHON_CACHE") or "cache")


def _fingerprint(spec: str) -> list:
    """What identifies a spec's content: corpus names and JSB files by name (plus size and mtime for
    files), folders by every readable file's relative path, size and mtime."""
    if spec.startswith("corpus:"):
        return [spec]
    path = Path(spec.split(":", 1)[1] if spec.startswith("jsb-quarter:") else spec)
    if path.is_dir():
        rows = []
        for p in sorted(path.rglob("*")):
            if p.is_file() and p.suffix.lower() in EXTENSIONS:
                st = p.stat()
                rows.append([p.relative_to(path).as_posix(), st.st_size, st.st_mtime_ns])
        return [spec, str(path.resolve()), rows]
    if path.is_file():
        st = path.stat()
        return [spec, str(path.resolve()), st.st_size, st.st_mtime_ns]
    return [spec]


def cache_key(specs: list[str], corpus_limit: int | None = None) -> str:
    payload = json.dumps([tokenizer_version(), corpus_limit, [_fingerprint(s) for s in specs]])
    return hashlib.sha1(payload.encode()).hexdigest()[:16]


def prepare_or_load(specs: list[str], cache_root: str | Path | None = None, jobs: int | None = None,
                    corpus_limit: int | None = None, progress: bool = False) -> tuple[Path, dict]:
    """The prepared folder for `specs` under `cache_root` (default ./cache or $ANTIPHON_CACHE), preparing
    it first when no complete one exists. Returns (folder, manifest)."""
    root = Path(cache_root) if cache_root is not None else default_cache_root()
    out = root / f"prepared-{cache_key(specs, corpus_limit)}"
    if (out / MANIFEST).is_file():
        try:
            manifest = read_manifest(out)
            if manifest.get("tokenizer_version") == tokenizer_version():
                return out, manifest
        except (OSError, ValueError):
            pass  # unreadable: prepare again
    prepare(specs, out, jobs=jobs, corpus_limit=corpus_limit, progress=progress)
    return out, read_manifest(out)
