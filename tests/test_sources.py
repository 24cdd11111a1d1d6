"""Reading music: MIDI (symusic, mido fallback), music21 formats, corpus sets, JSB, splits, bad files."""
from __future__ import annotations

import collections
import random
from pathlib import Path

import mido
import pytest
from hypothesis import HealthCheck, given, settings, strategies as st

from antiphon.engine.events import Meter, Note
from antiphon.training import sources
from antiphon.engine import reading
from antiphon.engine.reading import read_midi_mido, read_midi_symusic
from antiphon.training.sources import frame_count, load_pieces, read_jsb_quarter
from antiphon.training.splits import assign_split, piece_key

JSB = Path(__file__).resolve().parents[2] / "shared" / "benchmarks" / "jsb" / "jsb-chorales-quarter.trainvalid.json"


# ------------------------------------------------------------------------------------------ fixtures

def write_midi(path: Path, notes, tpq: int = 480, meter=(4, 4), drums=(), channel: int = 0) -> Path:
    """A type-1 MIDI file: notes as (start_q, dur_q, pitch, velocity) in quarters, one track, plus an
    optional drum track on channel 10."""
    mid = mido.MidiFile(type=1, ticks_per_beat=tpq)
    meta = mido.MidiTrack()
    meta.append(mido.MetaMessage("time_signature", numerator=meter[0], denominator=meter[1], time=0))
    meta.append(mido.MetaMessage("set_tempo", tempo=500000, time=0))
    mid.tracks.append(meta)

    def track(items, ch):
        events = []
        for start, dur, pitch, vel in items:
            events.append((round(start * tpq), 1, mido.Message("note_on", channel=ch, note=pitch, velocity=vel)))
            events.append((round((start + dur) * tpq), 0, mido.Message("note_off", channel=ch, note=pitch)))
        events.sort(key=lambda e: (e[0], e[1]))
        tr, now = mido.MidiTrack(), 0
        for t, _, msg in events:
            tr.append(msg.copy(time=t - now))
            now = t
        mid.tracks.append(tr)

    track(notes, channel)
    if drums:
        track(drums, 9)
    mid.save(str(path))
    return path


MELODY = [(0, 1, 60, 100), (1, 0.5, 62, 90), (1.5, 0.5, 64, 80), (2, 2, 67, 64), (2, 2, 48, 70)]


@pytest.fixture(scope="session")
def chorale_midi(tmp_path_factory) -> bytes:
    """A real chorale as MIDI bytes (music21 corpus -> music21's MIDI writer)."""
    from music21 import corpus

    path = tmp_path_factory.mktemp("chorale") / "bwv66.6.mid"
    corpus.parse("bach/bwv66.6").write("midi", fp=str(path))
    return path.read_bytes()


@pytest.fixture
def mixed_folder(tmp_path, chorale_midi) -> tuple[Path, set[str], set[str]]:
    """A folder of good MIDI files (with a sub-folder) and broken ones. Returns (folder, good, bad)."""
    root = tmp_path / "music"
    (root / "sub").mkdir(parents=True)
    (root / "Chorale.MID").write_bytes(chorale_midi)
    write_midi(root / "melody.mid", MELODY, drums=[(0, 0.25, 36, 100)])
    write_midi(root / "sub" / "waltz.midi", MELODY, tpq=96, meter=(3, 4))
    (root / "empty.mid").write_bytes(b"")
    (root / "random.mid").write_bytes(random.Random(0).randbytes(2000))
    (root / "truncated.mid").write_bytes(chorale_midi[: len(chorale_midi) // 2])
    (root / "text.mid").write_text("this is not a MIDI file\n")
    write_midi(root / "sub" / "silent.mid", [])
    (root / "notes.txt").write_text("ignored: not a music extension")
    good = {"Chorale.MID", "melody.mid", "waltz.midi"}
    bad = {"empty.mid", "random.mid", "truncated.mid", "text.mid", "silent.mid"}
    return root, good, bad


# ------------------------------------------------------------------------------------------ MIDI

def test_midi_reader_converts_ticks_keeps_velocity_skips_drums(tmp_path):
    path = write_midi(tmp_path / "a.mid", MELODY, tpq=480, meter=(3, 4), drums=[(0, 1, 36, 120)])
    notes, meter = read_midi_symusic(str(path))
    assert meter == Meter(3, 4)
    assert sorted(notes) == sorted(Note(round(s * 24), round((s + d) * 24), p, v) for s, d, p, v in MELODY)
    m_notes, m_meter = read_midi_mido(str(path))  # the fallback agrees
    assert sorted(m_notes) == sorted(notes) and m_meter == meter


def test_midi_reader_rounds_odd_resolutions_and_unsupported_meter(tmp_path):
    # 7 ticks per quarter: 3 ticks -> 3*24/7 = 10.29 -> 10; a 9/4 bar (9 quarters) is too long for Meter -> 4/4
    path = write_midi(tmp_path / "odd.mid", [(3 / 7, 1, 60, 80)], tpq=7, meter=(9, 4))
    notes, meter = read_midi_symusic(str(path))
    assert notes == [Note(10, 34, 60, 80)]
    assert meter == Meter()


def test_folder_keeps_good_files_and_reports_each_broken_one(mixed_folder):
    root, good, bad = mixed_folder
    pieces, skipped = load_pieces([str(root)], jobs=1)
    assert {Path(p.path).name for p in pieces} == good
    assert {Path(s["path"]).name for s in skipped} == bad
    assert all(s["reason"] for s in skipped)
    reasons = {Path(s["path"]).name: s["reason"] for s in skipped}
    assert reasons["silent.mid"] == "no notes"
    melody = next(p for p in pieces if p.path.endswith("melody.mid"))
    assert 36 not in {n.pitch for n in melody.notes}  # drums skipped
    assert {n.velocity for n in melody.notes} == {100, 90, 80, 64, 70}
    assert melody.key == "melody.mid"
    chorale = next(p for p in pieces if p.path.endswith("Chorale.MID"))
    assert chorale.key == "chorale.mid"  # lower-cased file name
    assert len(chorale.notes) > 100
    assert next(p for p in pieces if p.path.endswith("waltz.midi")).meter == Meter(3, 4)


def test_missing_path_and_unknown_corpus_raise():
    with pytest.raises(FileNotFoundError):
        load_pieces(["/no/such/place"])
    with pytest.raises(ValueError, match="unknown corpus"):
        load_pieces(["corpus:nothing"])


# ------------------------------------------------------------------------------------------ corpus

def test_corpus_bach_reads_a_few_chorales():
    pieces, skipped = load_pieces(["corpus:bach"], jobs=2, corpus_limit=4)
    assert len(pieces) == 4 and not skipped
    for p in pieces:
        assert p.key.startswith("bach/") and p.split in ("train", "valid", "test")
        assert len(p.notes) > 50
        assert len({n.pitch for n in p.notes}) > 10
        assert all(n.velocity == 80 and n.end > n.start for n in p.notes)


def test_corpus_key_agrees_with_the_same_file_given_as_a_path(tmp_path):
    (first,), _ = load_pieces(["corpus:bach"], jobs=1, corpus_limit=1)
    (again,), _ = load_pieces([first.path], jobs=1)
    assert (again.key, again.split, again.notes) == (first.key, first.split, first.notes)
    # corpus:broad names the same file with the same key
    broad = {t.key for t in sources._expand("corpus:broad", [], None)}
    assert first.key in broad
    # a copy outside the corpus is just its file name
    copy = tmp_path / Path(first.path).name
    copy.write_bytes(Path(first.path).read_bytes())
    assert piece_key(copy) == Path(first.path).name.lower()


def test_multi_tune_abc_gives_one_piece_per_tune_with_corpus_keys():
    path = sources.corpus_root() / "essenFolksong" / "erk5.abc"
    pieces, skipped = load_pieces([str(path)], jobs=2)
    tunes = path.read_text().count("\nX:") + path.read_text().startswith("X:")
    assert len(pieces) + len(skipped) == tunes == 27
    assert len(pieces) >= 25
    assert pieces[0].key == "essenFolksong/erk5.abc#1"
    assert all(p.path.endswith(p.key.split("/")[-1]) for p in pieces)
    # corpus:folk names these tunes the same way
    folk = {t.key: t for t in sources._expand("corpus:folk", [], None)}
    assert {p.key for p in pieces} <= set(folk) or len(folk) == sources.CORPUS_SETS["folk"][0][1]
    assert any(k.startswith("essenFolksong/erk5.abc#") for k in folk) or len(folk) == 3000


def test_corpus_folk_cap_is_deterministic_and_spread():
    a = [t.key for t in sources._expand("corpus:folk", [], None)]
    b = [t.key for t in sources._expand("corpus:folk", [], None)]
    assert a == b and len(a) == 3000
    assert len({k.split("#")[0] for k in a}) > 20  # drawn from across the collection
    assert not any("/test" in k for k in a)


# ------------------------------------------------------------------------------------------ splits

def test_splits_are_deterministic_and_about_90_5_5():
    keys = [f"piece{i}.mid" for i in range(20000)]
    first = [assign_split(k) for k in keys]
    assert first == [assign_split(k) for k in keys]
    counts = collections.Counter(first)
    assert abs(counts["train"] / len(keys) - 0.90) < 0.01
    assert abs(counts["valid"] / len(keys) - 0.05) < 0.006
    assert abs(counts["test"] / len(keys) - 0.05) < 0.006


def test_piece_key_uses_the_lower_cased_file_name(tmp_path):
    assert piece_key(tmp_path / "a" / "B" / "Song.MID") == "song.mid"
    assert piece_key(tmp_path / "Tunes.abc", 3) == "tunes.abc#3"
    root = sources.corpus_root()
    assert piece_key(root / "bach" / "bwv66.6.mxl") == "bach/bwv66.6.mxl"
    assert piece_key(root / "essenFolksong" / "erk5.abc", 2) == "essenFolksong/erk5.abc#2"


# ------------------------------------------------------------------------------------------ JSB

@pytest.mark.skipif(not JSB.exists(), reason="JSB benchmark file not present")
def test_jsb_quarter_preserves_frames_and_holds_notes():
    import json

    data = json.loads(JSB.read_text())
    pieces = read_jsb_quarter(str(JSB))
    valid = [p for p in pieces if p.split == "valid"]
    assert len(valid) == len(data["valid"]) == 76
    assert len([p for p in pieces if p.split == "train"]) == 229
    assert sum(frame_count(p) for p in valid) == 4602
    for piece, frames in zip(valid, data["valid"]):
        assert piece.meter == Meter(4, 4)
        assert frame_count(piece) == len(frames)
        rebuilt = [sorted(n.pitch for n in piece.notes if n.start <= t * 24 < n.end) for t in range(len(frames))]
        assert rebuilt == [sorted(f) for f in frames]
        for n in piece.notes:  # held, not repeated: a note never ends where the same pitch goes on
            t0, t1 = n.start // 24, n.end // 24
            assert n.start % 24 == 0 and n.end % 24 == 0 and n.velocity == 80
            assert all(n.pitch in frames[t] for t in range(t0, t1))
            assert t1 == len(frames) or n.pitch not in frames[t1]
    # pieces loaded through load_pieces keep the JSON split, not the hash
    loaded, skipped = load_pieces([f"jsb-quarter:{JSB}"])
    assert not skipped and [p.split for p in loaded] == [p.split for p in pieces]


def test_jsb_reads_whichever_keys_the_file_has(tmp_path):
    path = tmp_path / "only_test.json"
    path.write_text('{"test": [[[60, 64], [60, 64], [62], []]]}')
    (piece,) = read_jsb_quarter(str(path))
    assert piece.split == "test"
    assert piece.notes == [Note(0, 48, 60, 80), Note(0, 48, 64, 80), Note(48, 72, 62, 80)]


# ------------------------------------------------------------------------------------------ robustness

def _read_bytes(tmp_path: Path, name: str, data: bytes):
    path = tmp_path / name
    path.write_bytes(data)
    task = sources._file_tasks(path, [])
    results = [sources._read_task(t) for t in task]
    for piece, skip in results:
        assert (piece is None) != (skip is None)
        if skip is not None:
            assert isinstance(skip["reason"], str) and skip["reason"].strip()
            assert skip["path"].startswith(str(path))
        else:
            assert piece.notes and all(0 <= n.start < n.end for n in piece.notes)
    return results


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.binary(max_size=600), ext=st.sampled_from([".mid", ".midi", ".kar"]))
def test_random_bytes_never_raise(tmp_path, data, ext):
    _read_bytes(tmp_path, "r" + ext, data)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.data())
def test_mutated_real_midi_never_raises(tmp_path, chorale_midi, data):
    raw = bytearray(chorale_midi)
    for _ in range(data.draw(st.integers(1, 8), label="mutations")):
        kind = data.draw(st.sampled_from(["flip", "cut", "insert", "delete"]), label="kind")
        i = data.draw(st.integers(0, max(0, len(raw) - 1)), label="at")
        if kind == "flip" and raw:
            raw[i] = data.draw(st.integers(0, 255), label="byte")
        elif kind == "cut":
            raw = raw[:i]
        elif kind == "insert":
            raw[i:i] = data.draw(st.binary(min_size=1, max_size=16), label="bytes")
        elif kind == "delete":
            del raw[i: i + data.draw(st.integers(1, 16), label="n")]
    _read_bytes(tmp_path, "m.mid", bytes(raw))


@settings(max_examples=12, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.binary(max_size=300), ext=st.sampled_from([".abc", ".krn", ".xml", ".musicxml", ".mxl"]))
def test_random_bytes_through_music21_never_raise(tmp_path, data, ext):
    _read_bytes(tmp_path, "r" + ext, data)


def test_a_file_reached_by_two_specs_is_read_once(tmp_path):
    path = write_midi(tmp_path / "song.mid", MELODY)
    pieces, skipped = load_pieces([str(tmp_path), str(path)], jobs=1)
    assert len(pieces) == 1 and not skipped


def test_ties_merge_per_pitch_like_strip_ties():
    from music21 import chord, note, stream, tie
    from antiphon.engine.tokens import clean_notes

    part = stream.Part()
    a, b = note.Note("C4", quarterLength=1), note.Note("C4", quarterLength=2)
    a.tie, b.tie = tie.Tie("start"), tie.Tie("stop")
    c, d = chord.Chord(["E4", "G4"], quarterLength=1), chord.Chord(["E4", "A4"], quarterLength=1)
    c.notes[0].tie, d.notes[0].tie = tie.Tie("start"), tie.Tie("stop")  # E held, G -> A struck
    wrong, next_ = note.Note("D4", quarterLength=1), note.Note("F4", quarterLength=1)
    wrong.tie = tie.Tie("start")  # a tie into a different pitch (seen in corpus ABC): two notes
    for n in (a, b, c, d, wrong, next_):
        part.append(n)
    notes, _ = reading.score_notes(stream.Score([part]))
    assert sorted(notes) == sorted([Note(0, 72, 60, 80), Note(72, 120, 64, 80), Note(72, 96, 67, 80),
                                    Note(96, 120, 69, 80), Note(120, 144, 62, 80), Note(144, 168, 65, 80)])

    from music21 import corpus

    chorale = corpus.parse("bach/bwv66.6")
    flat = chorale.stripTies().flatten().notes
    pad = float(chorale.recurse().getElementsByClass("Measure").first().paddingLeft or 0)
    expected = [Note(round((float(e.offset) + pad) * 24), round((float(e.offset + e.quarterLength) + pad) * 24),
                     p.midi, 80) for e in flat for p in e.pitches]
    assert clean_notes(reading.score_notes(chorale)[0]) == clean_notes(expected)
