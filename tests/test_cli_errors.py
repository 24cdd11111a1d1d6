"""One rule for bad input, for every command: one line on stderr naming the flag or the file and the
reason, no traceback, a non-zero exit. Each case runs `antiphon` as a user does: a real process."""
from __future__ import annotations

import os
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

EXE = Path(sys.executable).with_name("antiphon")
NOT_MIDI = b"RIFF\x24\x00\x00\x00WAVEfmt "  # a WAV header in a .mid: no MThd


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    root = tmp_path_factory.mktemp("bad")
    (root / "bad.mid").write_bytes(NOT_MIDI)
    (root / "bad.style").write_bytes(b"not a style")
    folder = root / "songs"
    folder.mkdir()
    (folder / "bad.mid").write_bytes(NOT_MIDI)
    (root / "song.wav").write_bytes(NOT_MIDI)
    (root / "cut.mid").write_bytes(b"MThd\x00\x00\x00\x06\x00\x01\x00\x02\x01\xe0MTrk\x00\x00\x10\x00\x90")
    (root / "empty").mkdir()
    (root / "notes").mkdir()
    (root / "notes" / "readme.txt").write_text("no music here")
    from antiphon.engine.style import pack

    (root / "mine.style.ckpt").write_bytes(pack({}, {"kind": "checkpoint"}))
    return root


def cases(d: Path) -> list[tuple[list[str], list[str]]]:
    """(arguments, what the one line must say) for every command."""
    bad, songs = str(d / "bad.mid"), str(d / "songs")
    out = str(d / "out.mid")
    return [
        # bad files: the file and prepare's reason
        (["generate", "--input", bad, "--out", out], ["--input", bad, "not a MIDI file (no MThd header)"]),
        (["generate", "--input", str(d / "missing.mid"), "--out", out], ["--input", "missing.mid", "no such file"]),
        (["generate", "--input", bad, "--out", str(d / "no-such-folder" / "x.mid")], ["--out", "does not exist"]),
        (["train", bad, "--out", str(d / "x.style")], [bad, "not a MIDI file (no MThd header)"]),
        (["train", songs, "--out", str(d / "x.style")], ["bad.mid", "not a MIDI file (no MThd header)"]),
        (["prepare", bad, "--out", str(d / "prepared")], [bad, "not a MIDI file (no MThd header)"]),
        (["eval", "--style", "default", "--data", bad], ["test split", "not a MIDI file (no MThd header)"]),
        (["tune-memory", "--style", str(d / "x.style"), "--data", bad], ["valid split", "no MThd header"]),
        (["calibrate", "--style", str(d / "x.style"), "--data", songs], ["valid split", "no MThd header"]),
        (["demo", "--style", str(d / "bad.style"), "--out", out, "--png", str(d / "x.png"), "--no-wav"],
         ["bad.style", "not a safetensors style file"]),
        (["demo", "--soundfont", str(d / "missing.sf2")], ["--soundfont", "no such file"]),
        (["bench", "--style", str(d / "bad.style"), "--quick"], ["bad.style", "not a safetensors style file"]),
        (["ensemble", str(d / "bad.style"), "--data", songs, "--out", str(d / "e.style")], ["bad.style"]),
        (["generate", "--input", str(d / "cut.mid"), "--out", out], ["cut.mid", "damaged MIDI file"]),
        (["generate", "--input", str(d / "song.wav"), "--out", out], ["song.wav", "a .wav file", ".mid .midi"]),
        (["train", str(d / "song.wav"), "--out", str(d / "x.style")],
         ["song.wav", "not a format Antiphon reads (.wav)", "MIDI (.mid", "ABC (.abc)"]),
        (["train", str(d / "empty"), "--out", str(d / "x.style")], ["found no MIDI files in", "empty", "it is empty"]),
        (["train", str(d / "notes"), "--out", str(d / "x.style")], ["found no MIDI files in", "1 other file (.txt 1)"]),
        (["demo", "--style", str(d / "mine.style.ckpt"), "--out", out, "--png", str(d / "x.png"), "--no-wav"],
         ["mine.style.ckpt", "a training checkpoint", "not a style", str(d / "mine.style")]),
        # trained work is never replaced unless asked
        (["train", songs, "--out", str(d / "bad.style")], ["--out", "already exists", "--resume", "--overwrite"]),
        (["train", songs, "--out", str(d / "mine.style")], ["--out", "checkpoint", "exists", "--resume"]),
        (["train", songs, "--out", str(d / "bad.style"), "--resume"], ["--resume: no checkpoint", "--overwrite"]),
        # out-of-range values: refused while parsing, with the accepted range
        (["train", songs, "--out", str(d / "x.style"), "--batch-size", "0"], ["--batch-size", "at least 1", "got 0"]),
        (["train", songs, "--out", str(d / "x.style"), "--epochs", "0"], ["--epochs", "at least 1", "got 0"]),
        (["train", songs, "--out", str(d / "x.style"), "--epochs", "-3"], ["--epochs", "at least 1", "got -3"]),
        (["train", songs, "--out", str(d / "x.style"), "--lr", "0"], ["--lr", "0..1", "got 0"]),
        (["train", songs, "--out", str(d / "x.style"), "--dropout", "1.5"], ["--dropout", "0..1", "got 1.5"]),
        (["live", "--temperature", "-1"], ["--temperature", "0.05..3", "got -1"]),
        (["live", "--temperature", "100"], ["--temperature", "0.05..3", "got 100"]),
        (["generate", "--input", bad, "--out", out, "--temperature", "100"], ["--temperature", "0.05..3"]),
        (["demo", "--temperature", "-1"], ["--temperature", "0.05..3"]),
        (["live", "--top-p", "2"], ["--top-p", "0.05..1", "got 2"]),
        (["generate", "--input", bad, "--out", out, "--top-p", "2"], ["--top-p", "0.05..1"]),
        (["live", "--response-bars", "-1"], ["--response-bars", "1..64", "got -1"]),
        (["demo", "--response-bars", "-1"], ["--response-bars", "1..64"]),
        (["generate", "--input", bad, "--out", out, "--bars", "0"], ["--bars", "1..64", "got 0"]),
        (["live", "--bpm", "0"], ["--bpm", "20..400", "got 0"]),
        (["live", "--channel", "17"], ["--channel", "1..16", "got 17"]),
        (["live", "--meter", "4-4"], ["--meter", "4/4"]),
        (["live", "--silence-beats", "nan"], ["--silence-beats", "finite"]),
        (["live", "--temperature", "warm"], ["--temperature", "a number", "'warm'"]),
        (["ensemble", "a.style", "--data", songs, "--out", str(d / "e.style"), "--views", "99"], ["--views", "0..12"]),
        (["prepare", songs, "--out", str(d / "p"), "--jobs", "0"], ["--jobs", "at least 1"]),
        (["eval", "--data", songs, "--split", "everything"], ["--split", "invalid choice"]),
        (["ports", "--backend", "nope"], ["--backend", "invalid choice"]),
        # unknown flags: the subcommand's own parser answers
        (["live", "--foo"], ["antiphon live: unrecognized arguments: --foo", "antiphon live --help"]),
        (["live", "--temprature", "1"], ["antiphon live:", "did you mean --temperature?"]),
        (["generate", "--out", out], ["antiphon generate:", "required: --input"]),
        (["nope"], ["antiphon:", "invalid choice: 'nope'"]),
    ]


def run(args: list[str], tmp: Path) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k != "ANTIPHON_DEBUG"}
    env.update(ANTIPHON_CACHE=str(tmp / "cache"), XDG_CONFIG_HOME=str(tmp / "config"), PYTHONWARNINGS="ignore")
    return subprocess.run([str(EXE), *args], capture_output=True, text=True, timeout=240, cwd=tmp, env=env,
                          stdin=subprocess.DEVNULL)


@pytest.mark.slow
def test_every_command_answers_bad_input_with_one_line_and_a_non_zero_exit(files):
    todo = cases(files)
    with ThreadPoolExecutor(max_workers=3) as pool:
        results = list(pool.map(lambda c: run(c[0], files), todo))
    failures = []
    for (args, needles), r in zip(todo, results):
        lines = r.stderr.strip().splitlines()
        line = lines[0] if lines else ""
        problems = []
        if r.returncode == 0:
            problems.append("exit status 0")
        if len(lines) != 1:
            problems.append(f"{len(lines)} lines on stderr")
        if "Traceback" in r.stderr:
            problems.append("a traceback")
        if not line.startswith("antiphon"):
            problems.append("the line does not name the command")
        problems += [f"no {n!r}" for n in needles if n not in line]
        problems += [f"the parser's own words {w!r}" for w in ("MiniMidi", "Invaild", "iostream") if w in line]
        if problems:
            failures.append(f"antiphon {' '.join(args)}: {', '.join(problems)}\n    stderr: {r.stderr.strip()!r}")
    assert not failures, "\n".join(failures)
    assert len(todo) >= 40
    assert (files / "bad.style").read_bytes() == b"not a style"  # an existing --out was left as it was
    assert (files / "mine.style.ckpt").stat().st_size > 0 and not (files / "mine.style").exists()


def test_version_prints_the_version_and_exits_zero(tmp_path):
    from antiphon import __version__

    for cmd in ([str(EXE)], [sys.executable, "-m", "antiphon"]):
        r = subprocess.run([*cmd, "--version"], capture_output=True, text=True, timeout=60)
        assert (r.returncode, r.stdout.strip(), r.stderr) == (0, f"antiphon {__version__}", "")


def test_the_exit_status_tells_a_refused_value_from_a_refused_file(files):
    assert run(["live", "--top-p", "2"], files).returncode == 2  # refused while parsing
    assert run(["generate", "--input", str(files / "bad.mid"), "--out", str(files / "o.mid")], files).returncode == 1
