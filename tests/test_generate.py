"""`antiphon generate` and `antiphon demo` on real music, with a small style made here."""
import json

import mido
import pytest
import torch

from antiphon.cli import main as antiphon
from antiphon.engine.model import PRESETS, EventLSTM
from antiphon.engine.style import save_style


@pytest.fixture(scope="module")
def tiny_style(tmp_path_factory):
    torch.manual_seed(0)
    path = tmp_path_factory.mktemp("style") / "tiny.style"
    save_style(path, EventLSTM(PRESETS["tiny"]), {"name": "tiny"})
    return str(path)


@pytest.fixture(scope="module")
def chorale_midi(tmp_path_factory):
    from music21 import corpus

    path = tmp_path_factory.mktemp("midi") / "bwv66.6.mid"
    corpus.parse("bach/bwv66.6").write("midi", fp=str(path))
    return path


def test_generate_continues_by_at_least_the_bars_asked_in_a_file_a_daw_opens(tiny_style, chorale_midi, tmp_path, capsys):
    out = tmp_path / "more.mid"
    assert antiphon(["generate", "--style", tiny_style, "--input", str(chorale_midi), "--bars", "4",
                     "--temperature", "0.9", "--variations", "2", "--seed", "1", "--out", str(out), "--json"]) == 0
    summary = json.loads(capsys.readouterr().out)
    mid = mido.MidiFile(str(out))
    names = [t.name for t in mid.tracks]
    assert names[1] == "input" and len(mid.tracks) == 4  # tempo, input, two variations
    source = mido.MidiFile(str(chorale_midi))
    assert abs(mido.tempo2bpm(next(m.tempo for t in mid.tracks for m in t if m.type == "set_tempo"))
               - summary["bpm"]) < 1e-6
    ticks_per_bar = 4 * mid.ticks_per_beat
    input_end = summary["continuation_starts_tick"] * mid.ticks_per_beat // 24
    for track in mid.tracks[2:]:
        now, last, ons, offs = 0, 0, 0, 0
        for msg in track:
            now += msg.time
            if msg.type == "note_on" and msg.velocity:
                ons += 1
            elif msg.type in ("note_off", "note_on"):
                offs += 1
                last = max(last, now)
        assert ons == offs and ons > 0
        assert last >= input_end + 4 * ticks_per_bar  # at least the four bars asked for
    assert mid.length > source.length


def test_demo_writes_call_and_answer_as_midi_and_png(tiny_style, tmp_path, capsys):
    mid, png = tmp_path / "demo.mid", tmp_path / "demo.png"
    assert antiphon(["demo", "--style", tiny_style, "--out", str(mid), "--png", str(png), "--json"]) == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["answer_notes"] > 0 and 0 < summary["answer_delay_beats"] <= 2
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert [t.name for t in mido.MidiFile(str(mid)).tracks][1:] == ["call", "answer (tiny)"]
