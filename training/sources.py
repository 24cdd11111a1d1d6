"""Reading music: MIDI files, music21 formats, music21's bundled corpus, the JSB quarter-note JSON.

`load_pieces(specs)` turns DATA specs into `Piece`s (notes in ticks at 24 per quarter, a meter, a
split) plus a list of files it had to skip, each with a reason. A spec is:

- a file, or a folder searched recursively for .mid .midi .kar (read with symusic, mido as a
  fallback) and .musicxml .mxl .xml .krn .abc (read with music21; each tune of a multi-tune ABC file
  is its own piece, keyed ``name#N``);
- ``corpus:NAME``, a subset of music21's corpus (see `CORPUS_SETS`);
- ``jsb-quarter:PATH``, the JSB chorales JSON (keys train/valid/test, one frame per quarter).

No per-file failure escapes: a broken file becomes ``{"path": ..., "reason": ...}`` in `skipped`.
music21 parses run in a process pool; MIDI is parsed in-process (symusic is faster than the pickling).
"""
from __future__ import annotations

import concurrent.futures as cf
import hashlib
import os
import re
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

from antiphon.engine.events import TICKS_PER_QUARTER, Meter, Note
from antiphon.engine.reading import FORMATS, MAX_REASON, MIDI_EXTENSIONS, read_midi, read_music21_parts
from antiphon.engine.reading import SCORE_EXTENSIONS as MUSIC21_EXTENSIONS
from antiphon.engine.reading import reason as _reason

from .splits import SPLITS, assign_split, piece_key

EXTENSIONS = MIDI_EXTENSIONS + MUSIC21_EXTENSIONS


@dataclass
class Piece:
    key: str  # the split key (see training.splits.piece_key)
    path: str  # for display: the file, with #N for a tune of a multi-tune file
    notes: list[Note]
    meter: Meter = field(default_factory=Meter)
    split: str = "train"
    voices: list[int] | None = None  # each note's part (0 = the score's first), where the source has parts


@dataclass(frozen=True)
class _Task:
    """One unit of reading: a file, or one tune of a multi-tune ABC file."""

    path: str
    key: str
    display: str
    abc_text: str | None = None  # the tune's text (file header + tune) for an ABC tune


# ---------------------------------------------------------------------------------------------- corpus

def corpus_root() -> Path:
    import music21.corpus

    return Path(music21.corpus.__file__).resolve().parent


# corpus:NAME -> [(folder under the corpus root, the most pieces to take from it (None: all)), ...].
# A tune of a multi-tune ABC file counts as a piece. A cap keeps a deterministic hash-spread sample.
# Rough music21 parse cost per piece here: a chorale 0.1 s, an Essen tune 0.025 s, a Palestrina mass
# movement 0.7 s, a string-quartet movement a few seconds.
CORPUS_SETS: dict[str, list[tuple[str, int | None]]] = {
    "bach": [("bach", None)],
    "folk": [("essenFolksong", 3000)],
    "fiddle": [("ryansMammoth", 300), ("oneills1850", 400)],  # the same tunes corpus:broad holds
    "broad": [
        ("bach", None), ("essenFolksong", 1500), ("oneills1850", 400), ("ryansMammoth", 300),
        ("miscFolk", None), ("palestrina", 120), ("monteverdi", None), ("trecento", None),
        ("josquin", None), ("haydn", None), ("mozart", None), ("beethoven", None), ("schubert", None),
        ("schumann_robert", None), ("schumann_clara", None), ("corelli", None), ("handel", None),
        ("cpebach", None), ("chopin", None), ("joplin", None), ("weber", None), ("verdi", None),
        ("luca", None), ("ciconia", None), ("lusitano", None), ("beach", None),
    ],
}
# the shipped default style's training data: broad without its fiddle and Irish tunes (held out of every
# shipped style: the answer benchmark's out-of-domain calls), with all of Essen's first 3000 tunes
CORPUS_SETS["default"] = [(f, 3000 if f == "essenFolksong" else n) for f, n in CORPUS_SETS["broad"]
                          if f not in ("oneills1850", "ryansMammoth")]
# Folders of the corpus that are test material or analyses rather than music to learn from.
_CORPUS_EXCLUDE = re.compile(r"(^|/)(test[0-9a-z]?\.abc|choraleAnalyses/.*)$")


def _corpus_files(folder: str) -> list[Path]:
    root = corpus_root()
    out = []
    for p in sorted((root / folder).rglob("*")):
        rel = p.relative_to(root).as_posix()
        if p.is_file() and p.suffix.lower() in EXTENSIONS and not _CORPUS_EXCLUDE.search(rel):
            out.append(p)
    return out


def _sample(tasks: list[_Task], limit: int | None) -> list[_Task]:
    """At most `limit` tasks, chosen by a hash independent of the split hash (so the split stays
    ~90/5/5 inside the sample), returned in their original order."""
    if limit is None or len(tasks) <= limit:
        return tasks
    chosen = sorted(tasks, key=lambda t: hashlib.sha1(f"sample:{t.key}".encode()).digest())[:limit]
    keep = {t.key for t in chosen}
    return [t for t in tasks if t.key in keep]


# ---------------------------------------------------------------------------------------------- specs

def _split_abc(text: str) -> tuple[str, list[str]]:
    """ABC text -> (file header, [tune text, ...]); a tune starts at a line beginning with X:."""
    starts = [m.start() for m in re.finditer(r"^X:", text, flags=re.M)]
    if not starts:
        return "", [text]
    return text[: starts[0]], [text[a:b] for a, b in zip(starts, starts[1:] + [len(text)])]


def _file_tasks(path: Path, skipped: list[dict]) -> list[_Task]:
    if path.suffix.lower() != ".abc":
        return [_Task(str(path), piece_key(path), str(path))]
    try:
        text = path.read_text(encoding="utf-8", errors="replace")
    except OSError as exc:
        skipped.append({"path": str(path), "reason": _reason(exc)})
        return []
    header, tunes = _split_abc(text)
    if len(tunes) == 1:
        return [_Task(str(path), piece_key(path), str(path), header + tunes[0])]
    return [_Task(str(path), piece_key(path, i), f"{path}#{i}", header + tune) for i, tune in enumerate(tunes, 1)]


def _expand(spec: str, skipped: list[dict], corpus_limit: int | None) -> list[_Task]:
    if spec.startswith("corpus:"):
        name = spec[len("corpus:"):]
        if name not in CORPUS_SETS:
            raise ValueError(f"unknown corpus {name!r}; known: {', '.join(sorted(CORPUS_SETS))}")
        tasks = []
        for folder, cap in CORPUS_SETS[name]:
            tasks += _sample([t for p in _corpus_files(folder) for t in _file_tasks(p, skipped)], cap)
        return _sample(tasks, corpus_limit)
    path = Path(spec)
    if path.is_dir():
        every = [p for p in path.rglob("*") if p.is_file()]
        files = sorted(p for p in every if p.suffix.lower() in EXTENSIONS)
        if not files:
            raise ValueError(f"found no MIDI files in {spec} (nor scores){_what_else(every)}; Antiphon reads {FORMATS}")
        return [t for p in files for t in _file_tasks(p, skipped)]
    if path.is_file():
        if path.suffix.lower() not in EXTENSIONS:
            skipped.append({"path": spec, "reason": f"not a format Antiphon reads ({path.suffix or 'no extension'}); "
                                                    f"it reads {FORMATS}"})
            return []
        return _file_tasks(path, skipped)
    raise FileNotFoundError(f"no such file, folder or corpus: {spec}")


def _what_else(files: list[Path]) -> str:
    """', it holds 3 other files (.wav 2, .txt 1)': what a folder without music holds."""
    if not files:
        return ": it is empty"
    kinds = Counter(p.suffix.lower() or "no extension" for p in files)
    shown = ", ".join(f"{k} {n}" for k, n in kinds.most_common(4))
    return f": it holds {len(files)} other file{'s' if len(files) > 1 else ''} ({shown})"


# ---------------------------------------------------------------------------------------------- reading

def _read_task(task: _Task) -> tuple[Piece | None, dict | None]:
    """Reads one task; never raises (a failure comes back as a skipped entry)."""
    try:
        voices = None
        if Path(task.path).suffix.lower() in MIDI_EXTENSIONS:
            notes, meter = read_midi(task.path)
        else:
            notes, meter, voices = read_music21_parts(task.path, task.abc_text)
        if not notes:
            return None, {"path": task.display, "reason": "no notes"}
        if voices is not None and len(set(voices)) < 2:
            voices = None  # one part: nobody to accompany
        if voices is None:
            return Piece(task.key, task.display, sorted(notes), meter, assign_split(task.key)), None
        order = sorted(range(len(notes)), key=notes.__getitem__)
        return Piece(task.key, task.display, [notes[i] for i in order], meter, assign_split(task.key),
                     [voices[i] for i in order]), None
    except Exception as exc:  # noqa: BLE001 - per-file errors are reported, never raised
        return None, {"path": task.display, "reason": _reason(exc)}


def _read_batch(tasks: list[_Task]) -> list[tuple[Piece | None, dict | None]]:
    import warnings

    warnings.filterwarnings("ignore")  # music21 warns a lot on corpus ABC; failures are reported anyway
    return [_read_task(t) for t in tasks]


# ---------------------------------------------------------------------------------------------- JSB

def read_jsb_quarter(path: str) -> list[Piece]:
    """The JSB JSON (see training/jsb.py): one piece per list of frames; split = the JSON key."""
    from .jsb import frames_to_notes, read_jsb

    name = Path(path).name.lower()
    return [Piece(f"jsb:{name}:{split}:{i}", f"{path}:{split}[{i}]", frames_to_notes(frames), Meter(4, 4), split)
            for split, pieces in read_jsb(path).items() for i, frames in enumerate(pieces)]


def frame_count(piece: Piece, ticks_per_frame: int = TICKS_PER_QUARTER) -> int:
    """Frames of a JSB piece: up to its last note-off (trailing silent frames are not represented)."""
    return max((n.end for n in piece.notes), default=0) // ticks_per_frame


# ---------------------------------------------------------------------------------------------- entry

def default_jobs() -> int:
    return max(1, os.cpu_count() or 1)


def load_pieces(specs: list[str], jobs: int | None = None, corpus_limit: int | None = None,
                progress: bool = False, split: str | None = None) -> tuple[list[Piece], list[dict]]:
    """DATA specs -> (pieces, skipped). Pieces come back in spec order, files in sorted order.

    jobs: worker processes for music21 parses (default: every core; 1 parses in-process).
    corpus_limit: at most this many pieces from each corpus:NAME spec (for tests and quick runs).
    split: read only the pieces of this split (by their hash, with the small-data rule as train applies it;
    files and corpora, not the JSB file).
    Unknown corpus names and missing paths raise (they are mistakes in the command, not bad files).
    """
    jobs = default_jobs() if jobs is None else max(1, int(jobs))
    skipped: list[dict] = []
    plan: list[list[_Task] | list[Piece]] = []
    small_data: set[int] = set()  # specs whose split comes from the small-data rule, after reading
    for spec in specs:
        if spec.startswith("jsb-quarter:"):
            plan.append(read_jsb_quarter(spec[len("jsb-quarter:"):]))
        else:
            tasks = _expand(spec, skipped, corpus_limit)
            hashed = [assign_split(t.key) for t in tasks]
            if split is not None and all(s in hashed for s in SPLITS):  # the hash split is the split
                tasks = [t for t, s in zip(tasks, hashed) if s == split]
            elif split is not None:  # a split left empty: read it all, split it as train does (below)
                small_data.add(len(plan))
            plan.append(tasks)

    seen: set[tuple[str, str]] = set()  # the same file (or tune) reached by two specs is read once
    for i, group in enumerate(plan):
        kept = []
        for item in group:
            if isinstance(item, _Task):
                ident = (str(Path(item.path).resolve()), item.display[len(item.path):])
                if ident in seen:
                    continue
                seen.add(ident)
            kept.append(item)
        plan[i] = kept
    tasks = [t for group in plan for t in group if isinstance(t, _Task)]
    results: dict[_Task, tuple[Piece | None, dict | None]] = {}
    slow = [t for t in tasks if Path(t.path).suffix.lower() not in MIDI_EXTENSIONS]
    for t in tasks:  # MIDI: in-process, symusic takes microseconds
        if Path(t.path).suffix.lower() in MIDI_EXTENSIONS:
            results[t] = _read_task(t)
    results.update(_run_pool(slow, jobs, progress))

    pieces: list[Piece] = []
    for i, group in enumerate(plan):
        read = []
        for item in group:
            if isinstance(item, Piece):
                read.append(item)
                continue
            piece, skip = results[item]
            if piece is not None:
                read.append(piece)
            else:
                skipped.append(skip)
        if i in small_data:
            from .dataset import apply_small_data_rule

            apply_small_data_rule(read)
            read = [p for p in read if p.split == split]
        pieces += read
    return pieces, skipped


def _run_pool(tasks: list[_Task], jobs: int, progress: bool) -> dict:
    if not tasks:
        return {}
    bar = None
    if progress:
        from tqdm import tqdm

        bar = tqdm(total=len(tasks), unit="file", desc="parsing", leave=False)
    results = {}
    if jobs == 1 or len(tasks) < 4:
        for t in tasks:
            results[t] = _read_batch([t])[0]
            if bar:
                bar.update(1)
    else:
        size = max(1, min(16, len(tasks) // (jobs * 8)))
        batches = [tasks[i: i + size] for i in range(0, len(tasks), size)]
        try:
            with cf.ProcessPoolExecutor(max_workers=jobs) as pool:
                futures = {pool.submit(_read_batch, b): b for b in batches}
                for fut in cf.as_completed(futures):
                    for t, r in zip(futures[fut], fut.result()):
                        results[t] = r
                    if bar:
                        bar.update(len(futures[fut]))
        except cf.process.BrokenProcessPool:
            # A worker died (a crash inside a parser). Read the rest one by one in fresh processes,
            # so the file that kills a process is reported instead of taking the run down.
            for t in tasks:
                if t not in results:
                    results[t] = _read_isolated(t)
                    if bar:
                        bar.update(1)
    if bar:
        bar.close()
    return results


def _read_isolated(task: _Task) -> tuple[Piece | None, dict | None]:
    try:
        with cf.ProcessPoolExecutor(max_workers=1) as pool:
            return pool.submit(_read_batch, [task]).result()[0]
    except cf.process.BrokenProcessPool:
        return None, {"path": task.display, "reason": "the parser crashed on this file"}
