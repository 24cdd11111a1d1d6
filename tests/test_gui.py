"""The control panel (gui/), driven through its real widgets with pytest-qt (offscreen), on a
LiveEngine with real JACK ports (private dummy server) and a tiny random model."""
from __future__ import annotations

import os
import time

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

import pytest

pytestqt = pytest.importorskip("pytestqt")
import pytestqt.exceptions  # noqa: E402

rtmidi = pytest.importorskip("rtmidi")

from PyQt6.QtCore import QPoint, QSettings, Qt  # noqa: E402
from PyQt6.QtGui import QContextMenuEvent  # noqa: E402
from PyQt6.QtWidgets import QApplication  # noqa: E402

from antiphon.engine.model import PRESETS, EventLSTM  # noqa: E402
from antiphon.engine.runtime import StepRuntime  # noqa: E402
from antiphon.engine.session import ACCOMPANY, SessionParams  # noqa: E402
from antiphon.gui import settings as gui_settings  # noqa: E402
from antiphon.gui.learn import LEARN_TEXT  # noqa: E402
from antiphon.gui.panel import Panel  # noqa: E402
from antiphon.gui.pianoroll import PLAYER_COLOUR  # noqa: E402
from antiphon.plugin.live import LiveConfig, LiveEngine  # noqa: E402

_RUNTIME = None


def tiny_engine(config: LiveConfig) -> LiveEngine:
    global _RUNTIME
    if _RUNTIME is None:
        _RUNTIME = StepRuntime(EventLSTM(PRESETS["tiny"]))
    return LiveEngine(config, runtime=_RUNTIME, style_name="test")


@pytest.fixture(autouse=True)
def private_settings(tmp_path):
    """QSettings in a temp dir: tests never read or write the user's settings."""
    QSettings.setDefaultFormat(QSettings.Format.IniFormat)
    for fmt in (QSettings.Format.IniFormat, QSettings.Format.NativeFormat):
        QSettings.setPath(fmt, QSettings.Scope.UserScope, str(tmp_path / "settings"))
    yield tmp_path / "settings"


@pytest.fixture
def panel(jack_server, qtbot):
    engine = tiny_engine(LiveConfig(backend="jack", seed=1)).start()
    p = Panel(engine, tiny_engine)
    qtbot.addWidget(p)
    p.show()
    qtbot.waitExposed(p)
    try:
        yield p
    finally:
        p.shutdown()


@pytest.fixture
def player(jack_server, panel):
    """A python-rtmidi JACK output connected to Antiphon In: the test's keyboard."""
    out = rtmidi.MidiOut(rtmidi.API_UNIX_JACK, name="gui_test_player")
    out.open_virtual_port("keys")
    src = jack_server.wait_for_port("gui_test_player:keys")
    jack_server.connect(src, panel.engine.snapshot().ports[0])
    try:
        yield out
    finally:
        out.close_port()
        out.delete()


pytestmark = [pytest.mark.jack, pytest.mark.slow]


def test_temperature_knob_reaches_engine_thread(panel, qtbot):
    engine = panel.engine
    before = engine.session.params.temperature
    for _ in range(3):  # PageUp on the focused dial, as a keyboard user turns it
        qtbot.keyClick(panel.temperature.dial, Qt.Key.Key_PageUp)
    shown = float(panel.temperature.readout.text())
    assert shown > before + 0.1
    # the engine thread applied Controls' new params to the session
    qtbot.waitUntil(lambda: abs(engine.session.params.temperature - panel.temperature.value()) < 1e-9, timeout=2000)
    qtbot.waitUntil(lambda: engine.snapshot().params.temperature == pytest.approx(panel.temperature.value()),
                    timeout=1000)
    # and the other direction: M toggles the mode, the combo box follows
    qtbot.keyClick(panel, Qt.Key.Key_M)
    qtbot.waitUntil(lambda: engine.session.params.mode == ACCOMPANY, timeout=2000)
    assert panel.mode.currentData() == ACCOMPANY
    panel.response_bars.setValue(4)
    qtbot.waitUntil(lambda: engine.session.params.response_bars == 4, timeout=2000)


def _panic_once(panel, jack_server, qtbot, recorder: str) -> tuple[list[bytes], int]:
    """One note held, then Panic: what the recorder heard, and the cycles it or Antiphon missed meanwhile."""
    engine = panel.engine
    log_at = len(jack_server.log())
    missed_at = engine.sender.stats().missed_cycles
    rec = jack_server.frame_recorder(recorder)  # prints "ready" once its client runs
    jack_server.connect(engine.snapshot().ports[1], rec.port)
    time.sleep(0.2)
    engine.sender.send_now(b"\x90\x3c\x64")
    qtbot.waitUntil(lambda: engine.sender.stats().sounding == 1, timeout=2000)
    qtbot.mouseClick(panel.panic_button, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: engine.sender.stats().sounding == 0, timeout=2000)
    qtbot.wait(300)
    events = [m for _, m in rec.stop()]
    missed = jack_server.xruns(recorder, log_at) + jack_server.xruns("Antiphon", log_at)
    if missed_at >= 0:
        missed += engine.sender.stats().missed_cycles - missed_at
    return events, missed


def test_panic_button_releases_notes_on_jack(panel, jack_server, qtbot):
    # A starved --no-realtime server can skip the recorder's (or Antiphon's) cycle and the messages in it: such
    # a try measures the server, so it is played again; a message lost with no cycle missed fails at once.
    for attempt in range(3):
        events, missed = _panic_once(panel, jack_server, qtbot, f"gui_rec{attempt}")
        if b"\x90\x3c\x64" in events and b"\xb0\x7b\x00" in events or not missed:
            break
    assert b"\x90\x3c\x64" in events, f"the note-on never reached the recorder ({missed} cycles missed): {events}"
    after = events[events.index(b"\x90\x3c\x64") + 1:]
    assert any(m[0] == 0x80 and m[1] == 0x3C or m[0] == 0x90 and m[1] == 0x3C and m[2] == 0 for m in after), events
    assert b"\xb0\x7b\x00" in after, events
    off = next(i for i, m in enumerate(after) if m[1] == 0x3C)
    assert off < after.index(b"\xb0\x7b\x00")  # note-off first, then All Notes Off


def test_played_phrase_appears_in_piano_roll(panel, player, qtbot):
    pitches = (60, 64, 67, 72)
    for p in pitches:
        player.send_message([0x90, p, 90])
        qtbot.wait(120)
        player.send_message([0x80, p, 0])
        qtbot.wait(30)

    def played():
        return {n.pitch for n in panel.roll.notes if n.who == "player" and n.end is not None}

    try:  # (a generous wait: on a loaded machine the panel's timer and the engine run late, nothing more)
        qtbot.waitUntil(lambda: set(pitches) <= played(), timeout=10000)
    except pytestqt.exceptions.TimeoutError:
        pytest.fail(f"the roll shows the player's {sorted(played())} of {pitches}; the engine received "
                    f"{panel.engine.snapshot().received} messages; the roll: {list(panel.roll.notes)[:16]}")
    assert panel.engine.snapshot().received >= 2 * len(pitches)
    visible = [n for n in panel.roll.visible_notes() if n.who == "player"]
    assert {n.pitch for n in visible} >= set(pitches)
    assert panel.roll.low <= 60 and panel.roll.high >= 72
    # drawn: the roll's pixels hold the player's colour
    image = panel.roll.grab().toImage()
    pixels = [image.pixelColor(x, y) for x in range(0, image.width(), 2) for y in range(0, image.height(), 2)]
    assert sum(_bluish(c) for c in pixels) > 50  # the player's notes are blue (velocity sets the alpha)
    # the phrase ended (1 beat of silence): the tiny model answers; the roll holds its notes too
    qtbot.waitUntil(lambda: panel.engine.snapshot().session.answers >= 1, timeout=5000)
    # it was planned: the critic's choice and the planning time are shown
    qtbot.waitUntil(lambda: panel.critic_label.text().startswith("critic: #"), timeout=3000)
    assert " ms on cpu" in panel.critic_label.text()


def test_candidates_box_reaches_the_session(panel, qtbot):
    panel.candidates.setValue(3)
    qtbot.waitUntil(lambda: panel.engine.session.params.candidates == 3, timeout=2000)
    panel.candidates.setValue(1)
    qtbot.waitUntil(lambda: panel.engine.session.params.candidates == 1, timeout=2000)


def _bluish(c) -> bool:
    assert PLAYER_COLOUR.blue() - PLAYER_COLOUR.red() > 100
    return c.blue() > 150 and c.blue() - c.red() > 80


def test_midi_learn_binds_cc_from_real_port(panel, player, qtbot):
    engine = panel.engine
    # right-click on the temperature knob opens its context menu
    dial = panel.temperature.dial
    QApplication.sendEvent(dial, QContextMenuEvent(QContextMenuEvent.Reason.Mouse, QPoint(10, 10)))
    action = panel.learn.action(LEARN_TEXT)
    assert action is not None
    action.trigger()
    qtbot.waitUntil(lambda: engine.snapshot().learning == "temperature", timeout=2000)
    qtbot.waitUntil(lambda: panel.temperature.cc_label.text().startswith("move"), timeout=1000)
    assert panel.temperature.property("learning") is True
    player.send_message([0xB0, 30, 100])  # the first CC binds
    qtbot.waitUntil(lambda: engine.controls.cc_map.get(30) == "temperature", timeout=2000)
    assert engine.controls.learning is None
    qtbot.waitUntil(lambda: panel.temperature.cc_label.text() == "CC 30", timeout=1000)
    assert 21 not in engine.controls.cc_map  # the old binding of temperature is gone
    player.send_message([0xB0, 30, 100])  # then it drives the knob
    expected = 0.1 + 1.9 * 100 / 127
    qtbot.waitUntil(lambda: abs(engine.session.params.temperature - expected) < 1e-6, timeout=2000)
    qtbot.waitUntil(lambda: panel.temperature.readout.text() == f"{expected:.2f}", timeout=1000)
    assert panel.temperature.value() == pytest.approx(expected, abs=0.002)


def test_settings_persist_and_run_panel_screenshot(jack_server, qtbot, tmp_path, private_settings):
    png = tmp_path / "panel.png"
    from antiphon.gui.app import run_panel

    engines = []

    def factory(cfg):
        engines.append(tiny_engine(cfg))
        return engines[-1]

    params = SessionParams(temperature=1.3, top_p=0.7, mode=ACCOMPANY, response_bars=3)
    config = LiveConfig(backend="jack", params=params, cc_map=((40, "top_p"),), channel=4)
    assert run_panel(config, screenshot=str(png), duration=0.6, engine_factory=factory) == 0
    assert png.stat().st_size > 10_000
    assert engines[0]._stop.is_set()  # closed (panicked), its ports gone
    assert not any(p.endswith((":Antiphon In", ":Antiphon Out")) for p in jack_server.ports())
    # the next run with default arguments comes back as it was left; explicit arguments still win
    back = gui_settings.load_config(LiveConfig(backend="jack"))
    assert back.params.temperature == pytest.approx(1.3) and back.params.mode == ACCOMPANY
    assert back.params.response_bars == 3 and back.channel == 4 and back.cc_map == ((40, "top_p"),)
    explicit = gui_settings.load_config(LiveConfig(params=SessionParams(temperature=0.5)))
    assert explicit.params.temperature == 0.5 and explicit.params.top_p == pytest.approx(0.7)
    assert explicit.params.mode == ACCOMPANY


def test_event_loops_still_run_after_run_panel(qtbot):
    """Runs right after run_panel's test (file order): run_panel never tells the application to quit, so
    the event loops of whatever runs next (a host, these tests) still wait and deliver timers."""
    t0 = time.monotonic()
    qtbot.wait(150)
    assert time.monotonic() - t0 >= 0.14


def test_port_picker_restarts_engine_on_chosen_input(panel, player, jack_server, qtbot):
    old = panel.engine
    panel._fill_ports()  # the refresh button: the test's keyboard is now listed
    idx = panel.in_combo.findData("gui_test_player:keys")
    assert idx > 0, [panel.in_combo.itemText(i) for i in range(panel.in_combo.count())]
    assert panel.in_combo.itemText(0) == old.snapshot().ports[0]  # the running virtual port, by name
    assert not panel.apply_ports.isEnabled()
    panel.in_combo.setCurrentIndex(idx)
    panel.in_combo.activated.emit(idx)
    assert panel.apply_ports.isEnabled()
    panel.temperature.set_value(1.5)
    panel._set_param("temperature", 1.5)
    qtbot.mouseClick(panel.apply_ports, Qt.MouseButton.LeftButton)
    new = panel.engine
    assert new is not old and old._stop.is_set()
    assert new.config.in_port == "gui_test_player:keys" and new.controls.params.temperature == 1.5
    in_name = new.snapshot().ports[0]
    assert in_name == "gui_test_player:keys"  # the input now reads the keyboard's port (no virtual port)
    qtbot.waitUntil(lambda: any(p.endswith(":Antiphon In") for p in jack_server.connections().get(in_name, [])),
                    timeout=2000)
    assert not panel.apply_ports.isEnabled()


def test_the_roll_keeps_the_whole_last_call_and_its_answer_in_view(qtbot):
    from antiphon.engine.events import Meter
    from antiphon.engine.session import RollNote
    from antiphon.gui.pianoroll import PianoRoll

    bar = Meter().ticks_per_bar
    roll = PianoRoll(Meter(), bars=8)
    qtbot.addWidget(roll)
    roll.resize(800, 300)

    def notes(who, first_bar, bars, pitch):
        return [RollNote(float((first_bar + i) * bar), float((first_bar + i) * bar + bar / 2), pitch + i % 5, 90, who)
                for i in range(bars)]

    earlier = notes("player", 0, 2, 60) + notes("antiphon", 3, 2, 64)
    call = notes("player", 20, 10, 62)  # a 10-bar call from bar 20
    answer = notes("antiphon", 30, 4, 67)
    roll.set_notes(earlier + call + answer, now=34 * bar)
    assert roll.last_call_start() == 20 * bar
    assert roll.shown_bars == 15  # 14 bars of call and answer, and half a beat before the call
    visible = roll.visible_notes()
    assert set(call + answer) <= set(visible) and not set(earlier) & set(visible)
    roll.grab()  # draws the wider window

    short = notes("player", 40, 2, 62) + notes("antiphon", 42, 2, 65)
    roll.set_notes(earlier + call + answer + short, now=44 * bar)
    assert roll.last_call_start() == 40 * bar and roll.shown_bars == 8  # the default window holds it all
    assert set(short) <= set(roll.visible_notes())
    roll.set_notes(earlier + call + answer + short[:1], now=40.5 * bar)  # playing a new call: back to 8 bars
    assert roll.shown_bars == 8


def test_the_panel_roll_is_eight_bars_wide(panel):
    assert panel.roll.bars == 8 and panel.roll.shown_bars >= 8


def test_tempo_box_sets_the_internal_clock_and_is_kept(panel, qtbot, private_settings):
    engine = panel.engine
    panel.tempo.setValue(90.0)
    assert engine.clock.bpm == pytest.approx(90.0)
    t0 = time.perf_counter()
    tick0 = engine.clock.tick_at(t0)
    qtbot.wait(500)
    t1 = time.perf_counter()
    assert (engine.clock.tick_at(t1) - tick0) / (t1 - t0) == pytest.approx(90 / 60 * 24, rel=1e-6)
    qtbot.waitUntil(lambda: panel.tempo_label.text().strip() == "90.0 BPM", timeout=2000)
    assert panel.current_config().bpm == 90.0  # a restart with other ports keeps it
    panel.shutdown()
    assert gui_settings.load_config(LiveConfig()).bpm == 90.0  # and the next run comes back with it
    assert gui_settings.load_config(LiveConfig(bpm=140.0)).bpm == 140.0  # unless --bpm says otherwise


def test_space_plays_and_stops_the_clock_and_esc_panics(panel, qtbot):
    engine = panel.engine
    assert engine.clock.running
    engine.sender.send_now(b"\x90\x3c\x64")
    qtbot.waitUntil(lambda: engine.sender.stats().sounding == 1, timeout=2000)
    qtbot.keyClick(panel, Qt.Key.Key_Escape)  # Esc: panic, the clock plays on
    qtbot.waitUntil(lambda: engine.sender.stats().sounding == 0, timeout=2000)
    assert engine.clock.running
    qtbot.keyClick(panel, Qt.Key.Key_Space)  # Space: stop
    assert not engine.clock.running
    qtbot.waitUntil(lambda: panel.transport_label.text() == "■ stopped", timeout=2000)
    assert panel.play_button.text() == "▶ Play"
    stopped_at = engine.clock.tick_at()
    qtbot.wait(200)
    assert engine.clock.tick_at() == stopped_at
    qtbot.keyClick(panel, Qt.Key.Key_Space)  # Space again: play on from there
    assert engine.clock.running
    qtbot.waitUntil(lambda: panel.transport_label.text() == "▶ playing", timeout=2000)
    qtbot.wait(100)
    assert engine.clock.tick_at() > stopped_at
    qtbot.mouseClick(panel.play_button, Qt.MouseButton.LeftButton)  # the button does the same
    assert not engine.clock.running


def test_the_input_light_shows_what_arrives(panel, player, qtbot):
    assert panel.input_light.property("active") is False
    player.send_message([0x90, 64, 80])
    qtbot.waitUntil(lambda: panel.input_light.property("active") is True, timeout=2000)
    player.send_message([0x80, 64, 0])
    qtbot.wait(50)
    qtbot.waitUntil(lambda: panel.input_light.property("active") is False, timeout=2000)


def test_panic_is_midi_learnable(panel, player, qtbot):
    engine = panel.engine
    QApplication.sendEvent(panel.panic_button, QContextMenuEvent(QContextMenuEvent.Reason.Mouse, QPoint(5, 5)))
    panel.learn.action(LEARN_TEXT).trigger()
    qtbot.waitUntil(lambda: engine.snapshot().learning == "panic", timeout=2000)
    player.send_message([0xB0, 50, 127])
    qtbot.waitUntil(lambda: engine.controls.cc_map.get(50) == "panic", timeout=2000)
    engine.sender.send_now(b"\x90\x3e\x64")
    qtbot.waitUntil(lambda: engine.sender.stats().sounding == 1, timeout=2000)
    player.send_message([0xB0, 50, 127])
    qtbot.waitUntil(lambda: engine.sender.stats().sounding == 0, timeout=2000)
    assert engine.clock.running
    qtbot.waitUntil(lambda: "CC 50" in panel.panic_button.toolTip(), timeout=1000)


def test_a_program_change_selects_a_shipped_style_and_the_picker_follows(panel, player, qtbot):
    """A DAW's patch change on Antiphon In: Program Change N selects the Nth shipped style (from the next phrase),
    loaded off the engine thread; the panel's picker shows it."""
    from antiphon.engine.style import shipped_styles

    names = shipped_styles()
    assert "jsb-quarter" in names
    player.send_message([0xC1, names.index("jsb-quarter")])
    qtbot.waitUntil(lambda: panel.engine.snapshot().style == "jsb-quarter", timeout=20000)
    qtbot.waitUntil(lambda: panel.style_combo.currentData() == "jsb-quarter", timeout=2000)
    session = panel.engine.session
    assert session._pending_runtime is not None or session.gen.runtime is not _RUNTIME  # waiting, or taken over
    player.send_message([0xC1, len(names)])  # a number no style has: nothing changes
    qtbot.wait(300)
    assert panel.engine.snapshot().style == "jsb-quarter" and not panel.engine.snapshot().errors
