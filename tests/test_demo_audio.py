"""`antiphon demo` you can hear: a WAV rendered by FluidSynth with a General MIDI soundfont, exactly as
long as the demo plus the release tail, sounding where the notes are; the one line saying how to get the
synth when it is missing; the PNG's pitch axis in note names; the deprecated --bars."""
from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import wave
from pathlib import Path

import mido
import numpy as np
import pytest
import torch

from antiphon import audio
from antiphon.engine.model import PRESETS, EventLSTM
from antiphon.engine.style import save_style

EXE = Path(sys.executable).with_name("antiphon")


def require_synth() -> None:
    problem = audio.missing()
    if problem is None:
        return
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail(problem + " -- required when CI=true")
    pytest.skip(problem)


@pytest.fixture(scope="module")
def tiny_style(tmp_path_factory):
    torch.manual_seed(0)
    path = tmp_path_factory.mktemp("style") / "tiny.style"
    save_style(path, EventLSTM(PRESETS["tiny"]), {"name": "tiny"})
    return str(path)


def demo(args: list[str], cwd: Path, **env_changes) -> subprocess.CompletedProcess:
    env = dict(os.environ, **env_changes)
    env.pop("ANTIPHON_DEBUG", None)
    return subprocess.run([str(EXE), "demo", *args], capture_output=True, text=True, timeout=300, cwd=cwd,
                          env=env, stdin=subprocess.DEVNULL)


def rms(samples: np.ndarray) -> float:
    return float(np.sqrt(np.mean(samples.astype(np.float64) ** 2))) if len(samples) else 0.0


def test_demo_wav_lasts_the_demo_plus_the_release_tail_and_sounds_where_the_notes_are(tiny_style, tmp_path):
    require_synth()
    r = demo(["--style", tiny_style, "--out", "d.mid", "--png", "d.png", "--wav", "d.wav", "--json"], tmp_path)
    assert r.returncode == 0, r.stderr
    summary = json.loads(r.stdout)
    midi_length = mido.MidiFile(str(tmp_path / "d.mid")).length  # seconds to the last note-off
    assert summary["seconds"] == pytest.approx(midi_length, abs=1e-3)
    with wave.open(str(tmp_path / "d.wav"), "rb") as w:
        rate, channels, width, frames = w.getframerate(), w.getnchannels(), w.getsampwidth(), w.getnframes()
        pcm = np.frombuffer(w.readframes(frames), dtype="<i2").reshape(-1, channels)
    # the duration is defined: the music to its last note-off, then RELEASE_TAIL_S for the release
    assert (rate, width) == (audio.SAMPLE_RATE, 2)
    assert frames / rate == pytest.approx(midi_length + audio.RELEASE_TAIL_S, abs=1.0 / rate)
    if shutil.which("sox"):
        said = subprocess.run(["sox", "--i", "-D", str(tmp_path / "d.wav")], capture_output=True, text=True)
        assert float(said.stdout) == pytest.approx(midi_length + audio.RELEASE_TAIL_S, abs=1e-3)
    # it sounds while the call and the answer play, and fades to silence at the end
    spans = {0: [], 1: []}  # channel (0 the call, 1 the answer) -> (start s, end s) of its notes
    now, opened = 0.0, {}
    for msg in mido.MidiFile(str(tmp_path / "d.mid")):  # play order, msg.time in seconds
        now += msg.time
        if msg.type == "note_on" and msg.velocity:
            opened[(msg.channel, msg.note)] = now
        elif msg.type in ("note_on", "note_off") and (msg.channel, msg.note) in opened:
            spans[msg.channel].append((opened.pop((msg.channel, msg.note)), now))
    assert spans[0] and spans[1]
    call_note, answer_note = min(spans[0]), max(spans[1])
    silent_end = rms(pcm[-int(0.02 * rate):])
    assert silent_end < 30
    for start, end in (call_note, answer_note):
        a, b = int(start * rate), max(int(start * rate) + 1, int(min(end, start + 0.3) * rate))
        assert rms(pcm[a:b]) > max(50.0, 10 * silent_end), (start, end)
    assert summary["wav"] == "d.wav" and summary["wav_seconds"] == pytest.approx(frames / rate, abs=1e-3)


def test_demo_writes_the_wav_by_default_when_the_synth_is_there(tiny_style, tmp_path):
    require_synth()
    r = demo(["--style", tiny_style, "--out", "mine.mid", "--png", "mine.png"], tmp_path)
    assert r.returncode == 0 and (tmp_path / "mine.wav").is_file(), r.stderr
    assert "mine.wav" in r.stdout


def test_without_fluidsynth_demo_says_in_one_line_how_to_get_it(tiny_style, tmp_path):
    no_synth = str(Path(sys.executable).parent)  # a PATH holding python and antiphon, no fluidsynth
    r = demo(["--style", tiny_style, "--out", "d.mid", "--png", "d.png"], tmp_path, PATH=no_synth)
    assert r.returncode == 0 and (tmp_path / "d.mid").is_file() and not (tmp_path / "d.wav").exists()
    assert len(r.stderr.strip().splitlines()) == 1 and r.stderr.startswith("to hear it, install FluidSynth")
    assert "apt install fluidsynth fluid-soundfont-gm" in r.stderr
    r = demo(["--style", tiny_style, "--out", "d.mid", "--png", "d.png", "--wav", "d.wav"], tmp_path, PATH=no_synth)
    assert r.returncode == 1 and len(r.stderr.strip().splitlines()) == 1
    assert r.stderr.startswith("antiphon demo: --wav d.wav: no fluidsynth command found: install FluidSynth")


def test_the_demo_png_names_the_notes_on_its_pitch_axis(tmp_path):
    from antiphon.engine.events import Meter, Note
    from antiphon.pictures import note_name, piano_roll_png

    assert [note_name(p) for p in (21, 60, 61, 78, 108)] == ["A0", "C4", "C#4", "F#5", "C8"]
    call = [Note(0, 24, 60, 80), Note(24, 48, 66, 80), Note(48, 96, 79, 80)]
    answer = [Note(120, 144, 55, 80), Note(144, 192, 62, 80)]
    labels = piano_roll_png(str(tmp_path / "r.png"), [("call", call, "#2a6fdb"), ("answer", answer, "#e0692b")],
                            Meter(), "test")
    assert labels and all(re.fullmatch(r"[A-G]#?-?\d", lab) for lab in labels), labels
    assert {"C4", "G4", "C5"} <= set(labels)
    assert (tmp_path / "r.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_demo_bars_is_a_deprecated_name_for_call_bars(tiny_style, tmp_path):
    new = demo(["--style", tiny_style, "--call-bars", "2", "--no-wav", "--json"], tmp_path)
    old = demo(["--style", tiny_style, "--bars", "2", "--no-wav", "--json"], tmp_path)
    assert new.returncode == old.returncode == 0
    assert json.loads(new.stdout)["call_notes"] == json.loads(old.stdout)["call_notes"]
    assert new.stderr == "" and old.stderr.strip() == \
        "antiphon demo: --bars is deprecated here, use --call-bars (bars of the call)"
