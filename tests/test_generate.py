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
    scale = mid.ticks_per_beat // 24
    input_end = summary["continuation_starts_tick"] * scale
    starts = [s * scale for s in summary["variation_starts_tick"]]
    turn = starts[1] - starts[0]
    assert starts[0] == input_end and turn % ticks_per_bar == 0  # variation 2 follows, on a bar
    spans = []
    for k, track in enumerate(mid.tracks[2:]):
        now, first, last, ons, offs = 0, None, 0, 0, 0
        for msg in track:
            now += msg.time
            if msg.type == "note_on" and msg.velocity:
                ons += 1
                first = now if first is None else first
            elif msg.type in ("note_off", "note_on"):
                offs += 1
                last = max(last, now)
        assert ons == offs and ons > 0
        assert first >= starts[k] and last >= starts[k] + 4 * ticks_per_bar  # at least the four bars asked for
        spans.append((first, last))
    input_ons = [t for t, m in _timed(mid.tracks[1]) if m.type == "note_on" and m.velocity]
    assert spans[0][1] + ticks_per_bar <= turn <= min(t for t in input_ons if t >= turn)  # a bar of rest, then
    assert len(input_ons) == 2 * sum(1 for t in input_ons if t < turn)  # the input again before variation 2
    assert mid.length > 2 * source.length


def _timed(track):
    now = 0
    for msg in track:
        now += msg.time
        yield now, msg


def test_demo_writes_call_and_answer_as_midi_and_png(tiny_style, tmp_path, capsys):
    mid, png = tmp_path / "demo.mid", tmp_path / "demo.png"
    assert antiphon(["demo", "--style", tiny_style, "--out", str(mid), "--png", str(png), "--json"]) == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["answer_notes"] > 0 and 0 < summary["answer_delay_beats"] <= 2
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert [t.name for t in mido.MidiFile(str(mid)).tracks][1:] == ["call", "answer (tiny)"]
    programs = [[m.program for m in t if m.type == "program_change"] for t in mido.MidiFile(str(mid)).tracks[1:]]
    assert programs == [[0], [73]]  # call and answer on two General MIDI sounds: piano, flute


def test_piano_roll_counts_bars(tmp_path):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from antiphon.engine.events import Meter
    from antiphon.pictures import bar_axis

    fig, ax = plt.subplots()
    bar_axis(ax, 4 * 72, Meter.parse("3/4"))
    assert [t.get_text() for t in ax.get_xticklabels()] == ["1", "2", "3", "4", "5", "6"]
    assert list(ax.get_xticks()) == [0, 3, 6, 9, 12, 15] and ax.get_xlabel() == "bar (3/4)"
    plt.close(fig)
