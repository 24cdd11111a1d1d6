"""The main window. Reads `engine.snapshot()` on a QTimer (~30 fps), writes only through `Controls`.

It never calls a port or the model. Changing the backend or the ports restarts the engine (close,
which panics, then start with the new ports and the current parameters); everything else is a
Controls call that the engine thread picks up.
"""
from __future__ import annotations

import os
import time
from dataclasses import replace

from PyQt6.QtCore import Qt, QTimer, pyqtSignal
from PyQt6.QtGui import QKeySequence, QShortcut
from PyQt6.QtWidgets import (QApplication, QCheckBox, QComboBox, QDoubleSpinBox, QFileDialog, QFrame, QGridLayout,
                             QGroupBox, QHBoxLayout, QLabel, QMainWindow, QMessageBox, QPushButton,
                             QSpinBox, QVBoxLayout, QWidget)

from antiphon.engine.session import ACCOMPANY, ANSWERING, CALL_RESPONSE, LISTENING
from antiphon.engine.style import shipped_styles
from antiphon.plugin.live import LiveConfig, LiveEngine, LiveSnapshot

from .knob import Knob
from .learn import LearnMenus
from .pianoroll import ANTIPHON_COLOUR, PLAYER_COLOUR, PianoRoll
from .settings import BPM_RANGE, save_config

REFRESH_MS = 33
USER_HOLD_S = 0.4  # after the user touches a control, the snapshot does not override it for this long
INPUT_LIGHT_S = 0.15
ROLL_BARS = 8  # the piano roll shows at least this many bars, more when the last call and answer need it
MODE_NAMES = {CALL_RESPONSE: "Call and response", ACCOMPANY: "Accompany"}
PHRASE_END_NAMES = {"silence": "Silence", "bar": "Bar line", "pedal": "Sustain pedal", "cc": "CC trigger"}
OPEN_STYLE = "Open style file…"
VIRTUAL = None  # the item data of "create the virtual port"

STYLE_SHEET = """
QMainWindow, QWidget#central { background: #23262d; }
QWidget { color: #dfe3ea; font-size: 10pt; }
QGroupBox { border: 1px solid #3a3f4a; border-radius: 6px; margin-top: 14px; padding: 6px 6px 4px 6px; }
QGroupBox::title { subcontrol-origin: margin; left: 10px; padding: 0 4px; color: #9aa3b5; font-weight: bold; }
QComboBox, QSpinBox, QDoubleSpinBox { background: #2e323b; border: 1px solid #454b57; border-radius: 3px;
    padding: 2px 6px; min-height: 20px; }
QComboBox QAbstractItemView { background: #2e323b; selection-background-color: #3d5a80; }
QPushButton { background: #353a45; border: 1px solid #4a505d; border-radius: 4px; padding: 5px 12px; }
QPushButton:hover { background: #3f4552; }
QPushButton:disabled { color: #6b7280; }
QPushButton#panic { background: #b3261e; border: 1px solid #e0453c; color: white; font-weight: bold;
    font-size: 13pt; padding: 8px 18px; }
QPushButton#panic:pressed { background: #7f1a15; }
QPushButton#record:checked { background: #7a1f1f; border: 1px solid #e0453c; color: #ffd6d6; }
QDial { background: #3a3f4a; }
QLabel#readout { font-family: "DejaVu Sans Mono"; font-size: 11pt; color: #ffffff; }
QLabel#cc { color: #8fd18f; font-size: 8pt; }
QLabel#big { font-size: 17pt; font-weight: bold; }
QLabel#dim { color: #8a93a5; }
QLabel#inlight { color: #3a3f4a; font-weight: bold; }
QLabel#inlight[active="true"] { color: #7bd88f; }
QLabel#stats { font-family: "DejaVu Sans Mono"; font-size: 9pt; color: #b9c0cc; }
QFrame#transport { background: #1b1e24; border: 1px solid #3a3f4a; border-radius: 6px; }
QStatusBar { color: #f0b44c; }
*[learning="true"] { background: #4a3b12; border: 1px solid #f0b44c; border-radius: 4px; }
"""


class Panel(QMainWindow):
    closed = pyqtSignal()  # the window was closed (run_panel's event loop ends on it)

    def __init__(self, engine: LiveEngine, engine_factory=None):
        super().__init__()
        self.engine = engine
        self.engine_factory = engine_factory or (lambda cfg: LiveEngine(cfg))
        self.style_request = engine.config.style  # what the style picker asked for (saved in settings)
        self._shown_style = ""
        self._user_touched: dict[str, float] = {}
        self._last_params = None
        self._last_errors: tuple = ()
        self._last_received = 0
        self._lit_until = 0.0
        self._closed = False
        self.learn = LearnMenus(lambda: self.engine.controls)
        self.setWindowTitle("Antiphon")
        self.setStyleSheet(STYLE_SHEET)
        self._build()
        self._fill_ports()
        self.timer = QTimer(self)
        self.timer.timeout.connect(self.refresh)
        self.timer.start(REFRESH_MS)
        self.refresh()

    @property
    def controls(self):
        return self.engine.controls

    # ------------------------------------------------------------------ layout
    def _build(self) -> None:
        params = self.engine.controls.params
        central = QWidget(objectName="central")
        root = QVBoxLayout(central)
        root.setContentsMargins(10, 8, 10, 6)
        root.setSpacing(8)

        # transport strip
        strip = QFrame(objectName="transport")
        row = QHBoxLayout(strip)
        row.setContentsMargins(12, 6, 12, 6)
        self.transport_label = QLabel(objectName="big")
        self.transport_label.setMinimumWidth(130)
        self.play_button = QPushButton("■ Stop")
        self.play_button.setToolTip("Start or stop Antiphon's own clock (Space); a DAW's MIDI clock runs its own")
        self.play_button.setFocusPolicy(Qt.FocusPolicy.NoFocus)
        self.play_button.clicked.connect(self.toggle_transport)
        self.tempo_label = QLabel(objectName="big")
        self.tempo_label.setMinimumWidth(150)
        self.source_label = QLabel(objectName="dim")
        self.tempo = QDoubleSpinBox()
        self.tempo.setRange(*BPM_RANGE)
        self.tempo.setDecimals(1)
        self.tempo.setSingleStep(1.0)
        self.tempo.setSuffix(" BPM")
        self.tempo.setKeyboardTracking(False)  # typing 96 sets 96, not 9 first
        self.tempo.setValue(self.engine.config.bpm)
        self.tempo.setToolTip("Tempo of Antiphon's own clock (used while no MIDI clock arrives)")
        self.tempo.valueChanged.connect(self.set_tempo)
        self.input_light = QLabel("● IN", objectName="inlight")
        self.input_light.setToolTip("Lights while notes or controllers arrive on the input")
        self.input_light.setProperty("active", False)
        self.position_label = QLabel(objectName="big")
        self.position_label.setMinimumWidth(120)
        self.state_label = QLabel()
        self.state_label.setMinimumWidth(130)
        self.state_label.setAlignment(Qt.AlignmentFlag.AlignCenter)
        self.key_label = QLabel(objectName="dim")
        tempo_box = QVBoxLayout()
        tempo_box.setSpacing(0)
        tempo_box.addWidget(self.tempo_label)
        tempo_box.addWidget(self.source_label)
        transport_box = QVBoxLayout()
        transport_box.setSpacing(2)
        transport_box.addWidget(self.transport_label)
        transport_box.addWidget(self.play_button)
        set_box = QVBoxLayout()
        set_box.setSpacing(2)
        set_box.addWidget(self.tempo)
        set_box.addWidget(self.input_light, alignment=Qt.AlignmentFlag.AlignCenter)
        row.addLayout(transport_box)
        row.addLayout(tempo_box)
        row.addLayout(set_box)
        row.addSpacing(10)
        row.addWidget(self.position_label)
        row.addStretch(1)
        state_box = QVBoxLayout()
        state_box.setSpacing(2)
        state_box.addWidget(self.state_label)
        state_box.addWidget(self.key_label, alignment=Qt.AlignmentFlag.AlignCenter)
        row.addLayout(state_box)
        row.addSpacing(12)
        self.panic_button = QPushButton("PANIC", objectName="panic")
        self.panic_button.setToolTip("All notes off (Esc). Right-click for MIDI learn.")
        self.panic_button.setFocusPolicy(Qt.FocusPolicy.NoFocus)
        self.panic_button.clicked.connect(self.panic)
        row.addWidget(self.panic_button)
        root.addWidget(strip)

        # piano roll with a legend
        self.roll = PianoRoll(self.engine.meter, bars=ROLL_BARS)
        root.addWidget(self.roll, 1)
        legend = QHBoxLayout()
        legend.setSpacing(14)
        for text, colour in (("■ you", PLAYER_COLOUR), ("■ Antiphon", ANTIPHON_COLOUR)):
            lab = QLabel(text)
            lab.setStyleSheet(f"color: {colour.name()}; font-weight: bold;")
            legend.addWidget(lab)
        legend.addStretch(1)
        self.stats_label = QLabel(objectName="stats")
        legend.addWidget(self.stats_label)
        root.addLayout(legend)
        self.critic_label = QLabel(objectName="stats")
        self.critic_label.setToolTip("The critic's last choice: which candidate, out of how many, and in words "
                                     "what set it above the others; how long planning took, and where it ran")
        root.addWidget(self.critic_label)

        # controls
        bottom = QHBoxLayout()
        bottom.setSpacing(10)
        play = QGroupBox("Play")
        grid = QGridLayout(play)
        grid.setHorizontalSpacing(10)
        self.temperature = Knob("Temperature", 0.05, 2.0, params.temperature)
        self.temperature.setToolTip("Higher: wilder answers. Right-click for MIDI learn.")
        self.temperature.valueChanged.connect(lambda v: self._set_param("temperature", v))
        self.top_p = Knob("Top-p", 0.05, 1.0, params.top_p)
        self.top_p.setToolTip("Nucleus sampling: lower keeps to the likeliest notes. Right-click for MIDI learn.")
        self.top_p.valueChanged.connect(lambda v: self._set_param("top_p", v))
        grid.addWidget(self.temperature, 0, 0, 4, 1)
        grid.addWidget(self.top_p, 0, 1, 4, 1)
        self.mode = QComboBox()
        for mode, name in MODE_NAMES.items():
            self.mode.addItem(name, mode)
        self.mode.setToolTip("M toggles. Right-click for MIDI learn.")
        self.mode.currentIndexChanged.connect(lambda _: self._set_param("mode", self.mode.currentData()))
        self.response_bars = QSpinBox()
        self.response_bars.setRange(1, 16)
        self.response_bars.setSuffix(" bars")
        self.response_bars.setToolTip("Length of each answer. Right-click for MIDI learn.")
        self.response_bars.valueChanged.connect(lambda v: self._set_param("response_bars", v))
        self.phrase_end = QComboBox()
        for rule, name in PHRASE_END_NAMES.items():
            self.phrase_end.addItem(name, rule)
        self.phrase_end.setToolTip("What ends your phrase and cues the answer")
        self.phrase_end.currentIndexChanged.connect(
            lambda _: self._set_param("phrase_end", self.phrase_end.currentData()))
        self.silence_beats = QDoubleSpinBox()
        self.silence_beats.setRange(0.25, 16.0)
        self.silence_beats.setSingleStep(0.25)
        self.silence_beats.setSuffix(" beats")
        self.silence_beats.setToolTip("With 'Silence': how long a rest ends the phrase")
        self.silence_beats.valueChanged.connect(lambda v: self._set_param("silence_beats", v))
        self.candidates = QSpinBox()
        self.candidates.setRange(1, 256)
        self.candidates.setToolTip("Answers planned for each phrase; the critic plays the one that fits the call "
                                   "best (1: sample one as it plays)")
        self.candidates.valueChanged.connect(lambda v: self._set_param("candidates", v))
        for r, (label, w) in enumerate((("Mode", self.mode), ("Answer", self.response_bars),
                                         ("Phrase end", self.phrase_end), ("after", self.silence_beats),
                                         ("Candidates", self.candidates))):
            lab = QLabel(label, objectName="dim")
            grid.addWidget(lab, r, 2, alignment=Qt.AlignmentFlag.AlignRight)
            grid.addWidget(w, r, 3)
        self.mode_cc = QLabel(objectName="cc")
        self.bars_cc = QLabel(objectName="cc")
        grid.addWidget(self.mode_cc, 0, 4)
        grid.addWidget(self.bars_cc, 1, 4)
        bottom.addWidget(play, 3)

        style = QGroupBox("Style")
        sl = QVBoxLayout(style)
        self.style_combo = QComboBox()
        self.style_combo.setMinimumWidth(150)
        self._fill_styles(self.style_request)
        self.style_combo.activated.connect(self._style_chosen)
        self.style_label = QLabel(objectName="dim")
        self.style_label.setWordWrap(True)
        self.record_button = QPushButton("● Record", objectName="record")
        self.record_button.setCheckable(True)
        self.record_button.setToolTip("Record call and answer to a MIDI file (saved every second)")
        self.record_button.clicked.connect(self._record_clicked)
        self.record_label = QLabel(objectName="dim")
        self.record_label.setWordWrap(True)
        sl.addWidget(self.style_combo)
        sl.addWidget(self.style_label)
        sl.addStretch(1)
        sl.addWidget(self.record_button)
        sl.addWidget(self.record_label)
        bottom.addWidget(style, 2)

        midi = QGroupBox("MIDI")
        ml = QGridLayout(midi)
        self.backend_combo = QComboBox()
        self.in_combo = QComboBox()
        self.out_combo = QComboBox()
        for c in (self.in_combo, self.out_combo):
            c.setSizeAdjustPolicy(QComboBox.SizeAdjustPolicy.AdjustToMinimumContentsLengthWithIcon)
            c.setMinimumContentsLength(22)
        self.channel = QSpinBox()
        self.channel.setRange(1, 16)
        self.channel.setValue(self.engine.channel + 1)
        self.channel.setPrefix("ch ")
        self.channel.valueChanged.connect(lambda v: self.controls.set_channel(v - 1))
        self.passthrough = QCheckBox("Echo my notes")
        self.passthrough.setToolTip("Passthrough: send the notes you play to the output as well")
        self.passthrough.setChecked(self.engine.passthrough)
        self.passthrough.toggled.connect(lambda on: self.controls.set_passthrough(on))
        self.apply_ports = QPushButton("Restart with these ports")
        self.apply_ports.setEnabled(False)
        self.apply_ports.clicked.connect(self._apply_ports)
        refresh = QPushButton("↻")
        refresh.setToolTip("Look for ports again")
        refresh.setFixedWidth(32)
        refresh.clicked.connect(self._fill_ports)
        self.backend_combo.activated.connect(lambda _: self._fill_ports(self.backend_combo.currentData()))
        self.in_combo.activated.connect(lambda _: self._ports_changed())
        self.out_combo.activated.connect(lambda _: self._ports_changed())
        for r, (label, w) in enumerate((("Backend", self.backend_combo), ("In", self.in_combo),
                                         ("Out", self.out_combo))):
            ml.addWidget(QLabel(label, objectName="dim"), r, 0, alignment=Qt.AlignmentFlag.AlignRight)
            ml.addWidget(w, r, 1, 1, 2)
        ml.addWidget(refresh, 0, 3)
        ml.addWidget(QLabel("Out channel", objectName="dim"), 3, 0, alignment=Qt.AlignmentFlag.AlignRight)
        ml.addWidget(self.channel, 3, 1)
        ml.addWidget(self.passthrough, 3, 2, 1, 2)
        ml.addWidget(self.apply_ports, 4, 1, 1, 3)
        bottom.addWidget(midi, 3)
        root.addLayout(bottom)
        self.setCentralWidget(central)

        self.learn.attach(self.temperature, "temperature", self.temperature.dial)
        self.learn.attach(self.top_p, "top_p", self.top_p.dial)
        self.learn.attach(self.mode, "mode")
        self.learn.attach(self.response_bars, "response_bars")
        self.learn.attach(self.panic_button, "panic")

        QShortcut(QKeySequence(Qt.Key.Key_Escape), self, activated=self.panic)
        QShortcut(QKeySequence(Qt.Key.Key_Space), self, activated=self.toggle_transport)
        QShortcut(QKeySequence(Qt.Key.Key_M), self, activated=self.toggle_mode)
        self.statusBar().showMessage("Right-click a knob, the mode, the answer length or Panic for MIDI learn. "
                                     "Esc: panic, Space: play/stop, M: mode.")
        self.resize(1060, 660)

    # ------------------------------------------------------------------ writes (Controls only)
    def _set_param(self, name: str, value) -> None:
        self._user_touched[name] = time.monotonic()
        self.controls.update(**{name: value})

    def panic(self) -> None:
        self.controls.panic()

    def toggle_transport(self) -> None:
        """Play/stop of the internal clock (the engine thread sees it stop and releases every note). A
        running MIDI clock is the DAW's: its own Start/Stop rule."""
        clock = self.engine.clock
        if clock.source == "midi" and clock.running:
            self.statusBar().showMessage("the DAW's MIDI clock drives the transport: start and stop it there", 4000)
            return
        if clock.running:
            clock.stop()
        else:
            clock.start()
        self.refresh()

    def set_tempo(self, bpm: float) -> None:
        """The internal clock's tempo (ClockFollower.set_bpm is thread-safe; a MIDI clock overrides it)."""
        self.engine.clock.set_bpm(float(bpm))

    def toggle_mode(self) -> None:
        mode = ACCOMPANY if self.controls.params.mode == CALL_RESPONSE else CALL_RESPONSE
        self._set_param("mode", mode)
        self.mode.blockSignals(True)
        self.mode.setCurrentIndex(self.mode.findData(mode))
        self.mode.blockSignals(False)

    def _fill_styles(self, current: str) -> None:
        self.style_combo.blockSignals(True)
        self.style_combo.clear()
        names = shipped_styles()
        for name in names:
            self.style_combo.addItem(name, name)
        if current and current not in names:
            self.style_combo.addItem(os.path.basename(current), current)
            self.style_combo.setItemData(self.style_combo.count() - 1, current, Qt.ItemDataRole.ToolTipRole)
        self.style_combo.insertSeparator(self.style_combo.count())
        self.style_combo.addItem(OPEN_STYLE, OPEN_STYLE)
        self.style_combo.setCurrentIndex(max(0, self.style_combo.findData(current)))
        self.style_combo.blockSignals(False)

    def choose_style_file(self) -> str | None:
        path, _ = QFileDialog.getOpenFileName(self, "Open style", os.getcwd(), "Antiphon styles (*.style);;All (*)")
        return path or None

    def choose_record_file(self) -> str | None:
        path, _ = QFileDialog.getSaveFileName(self, "Record to", os.path.join(os.getcwd(), "antiphon-session.mid"),
                                              "MIDI files (*.mid)")
        return path or None

    def _style_chosen(self, index: int) -> None:
        choice = self.style_combo.itemData(index)
        if choice == OPEN_STYLE:
            choice = self.choose_style_file()
            if not choice:
                self.style_combo.setCurrentIndex(max(0, self.style_combo.findData(self.style_request)))
                return
            self._fill_styles(choice)
        self.select_style(choice)

    def select_style(self, name: str) -> None:
        """Takes effect at the next phrase (the engine loads it on its own thread)."""
        self.style_request = name
        self.controls.set_style(name)
        self.statusBar().showMessage(f"loading style {os.path.basename(name)} (takes over at the next phrase)", 4000)

    def _record_clicked(self) -> None:
        if self.engine.snapshot().recording:
            self.controls.record(None)
            return
        path = self.choose_record_file()
        self.record_button.setChecked(False)
        if path:
            self.controls.record(path)

    # ------------------------------------------------------------------ ports and restart
    def _fill_ports(self, backend: str | None = None) -> None:
        from antiphon.plugin.ports import available_backends, list_ports

        snap = self.engine.snapshot()
        current_backend = snap.backend
        backend = backend or current_backend
        try:
            backends = available_backends()
        except Exception:
            backends = []
        for b in (current_backend, backend):
            if b not in backends:
                backends.append(b)
        self.backend_combo.clear()
        for b in backends:
            self.backend_combo.addItem(b + (" (running)" if b == current_backend else ""), b)
        self.backend_combo.setCurrentIndex(self.backend_combo.findData(backend))
        try:
            listing = list_ports([backend]).get(backend, {"inputs": [], "outputs": []})
        except Exception as exc:
            listing = {"inputs": [], "outputs": []}
            self.statusBar().showMessage(f"cannot list {backend} ports: {exc}", 6000)
        own = set(snap.ports)
        same = backend == current_backend
        for combo, names, virtual, opened, wanted in (
                (self.in_combo, listing["inputs"], "Antiphon In", snap.ports[0], self.engine.config.in_port),
                (self.out_combo, listing["outputs"], "Antiphon Out", snap.ports[1], self.engine.config.out_port)):
            combo.clear()
            running_virtual = same and not wanted and opened
            combo.addItem(opened if running_virtual else f"{virtual} (new virtual port)", VIRTUAL)
            combo.setItemData(0, f"Antiphon's own virtual port '{virtual}': connect your keyboard or DAW to it",
                              Qt.ItemDataRole.ToolTipRole)
            for name in names:
                if name in own or "Antiphon" in name.split(":")[0]:
                    continue
                combo.addItem(name, name)
            if same and wanted:
                idx = combo.findData(opened)
                if idx < 0:
                    combo.addItem(opened, opened)
                    idx = combo.count() - 1
                combo.setCurrentIndex(idx)
            combo.setToolTip(f"open now: {opened}" if same else f"open now: {opened} ({current_backend})")
        self._ports_changed()

    def _chosen_ports(self) -> tuple[str, str | None, str | None]:
        return self.backend_combo.currentData(), self.in_combo.currentData(), self.out_combo.currentData()

    def _ports_changed(self) -> None:
        cfg = self.engine.config
        backend, inp, out = self._chosen_ports()
        snap = self.engine.snapshot()
        changed = (backend != snap.backend or (inp or None) != (snap.ports[0] if cfg.in_port else None)
                   or (out or None) != (snap.ports[1] if cfg.out_port else None))
        self.apply_ports.setEnabled(bool(changed))

    def current_config(self) -> LiveConfig:
        """The running engine's configuration with everything the panel changed since."""
        snap = self.engine.snapshot()
        return replace(self.engine.config, params=self.controls.params, cc_map=tuple(self.controls.cc_map.items()),
                       style=self.style_request, channel=self.channel.value() - 1, bpm=self.tempo.value(),
                       passthrough=self.passthrough.isChecked(), record=snap.recording)

    def _apply_ports(self) -> None:
        backend, inp, out = self._chosen_ports()
        self.restart(replace(self.current_config(), backend=backend, in_port=inp, out_port=out))

    def restart(self, config: LiveConfig) -> bool:
        """Close the engine (panic, ports closed) and start one on `config`; on failure go back."""
        old = self.current_config()
        QApplication.setOverrideCursor(Qt.CursorShape.WaitCursor)
        try:
            self.engine.close()
            try:
                self.engine = self._start(config)
                ok = True
            except Exception as exc:
                QMessageBox.warning(self, "Antiphon", f"Could not start with those ports:\n{exc}")
                self.engine = self._start(old)
                ok = False
        finally:
            QApplication.restoreOverrideCursor()
        self._fill_ports()
        return ok

    def _start(self, config: LiveConfig) -> LiveEngine:
        return LiveEngine.started(config, self.engine_factory)

    # ------------------------------------------------------------------ reads (snapshot)
    def refresh(self) -> None:
        if self._closed:
            return
        s = self.engine.snapshot()
        self.roll.set_notes(s.session.roll, s.clock.tick)
        self._show_transport(s)
        self._show_input(s)
        self._show_params(s)
        self._show_learning(s)
        rec = s.recording
        self.record_button.setChecked(bool(rec))
        self.record_button.setText("■ Stop recording" if rec else "● Record")
        self.record_label.setText(os.path.basename(rec) if rec else "")
        self.record_label.setToolTip(rec or "")
        self.style_label.setText(f"loaded: {s.style}")
        if s.style != self._shown_style:  # chosen here, or by the DAW's Program Change: the picker follows
            self._shown_style = s.style
            found = self.style_combo.findData(s.style)
            if found >= 0 and found != self.style_combo.currentIndex():
                self.style_combo.blockSignals(True)
                self.style_combo.setCurrentIndex(found)
                self.style_combo.blockSignals(False)
                self.style_request = s.style
        self.style_label.setToolTip("the style the engine plays now (its name inside the style file)")
        st = s.sender
        self.stats_label.setText(
            f"model step {s.session.step_ms:4.2f} ms · engine p99 {s.step_ms_p99:4.2f} ms · "
            f"late {st.late_current_ms:4.2f} ms (worst {st.late_worst_ms:4.2f}) · "
            f"in {s.received} · out {st.sent} · dropped {s.dropped_inbox + st.dropped}")
        ss = s.session
        cut = f" (cut at the beat: {ss.plans_cut} so far)" if ss.plan_cut else ""
        self.critic_label.setText(f"critic: {ss.choice or '—'}  ·  planned in {ss.plan_ms:.0f} ms on {ss.device}{cut}")
        self.stats_label.setToolTip("model step: the last event's LSTM step; engine p99: one engine iteration; "
                                    "late: how late the sender put the last scheduled message on the port")
        if s.errors != self._last_errors:
            self._last_errors = s.errors
            if s.errors:
                self.statusBar().showMessage(s.errors[-1], 10000)

    def _show_transport(self, s: LiveSnapshot) -> None:
        c = s.clock
        self.transport_label.setText("▶ playing" if c.running else "■ stopped")
        self.transport_label.setStyleSheet(f"color: {'#7bd88f' if c.running else '#9aa3b5'};")
        self.tempo_label.setText(f"{c.bpm:5.1f} BPM")
        midi = c.source == "midi"
        if midi:
            self.source_label.setText("MIDI clock · " + ("locked" if c.locked else "locking…"))
        else:
            self.source_label.setText("internal clock (no MIDI clock)")
        self.tempo.setEnabled(not midi)
        self.play_button.setEnabled(not (midi and c.running))
        self.play_button.setText("■ Stop" if c.running else "▶ Play")
        self.position_label.setText(f"{c.bar}:{c.beat}")
        state = s.session.state
        if state == LISTENING and self.roll.sounding("antiphon"):
            state = ANSWERING  # the session is done deciding; the answer is still playing
        colour = {LISTENING: "#4fa3ff", ANSWERING: "#ff9a3c"}.get(state, "#6b7280")
        self.state_label.setText(state.upper())
        self.state_label.setStyleSheet(f"background: {colour}; color: #111; font-weight: bold; font-size: 12pt;"
                                       "border-radius: 5px; padding: 4px 10px;")
        key = f"in {s.session.key}  ·  " if s.session.key not in ("", "-") else ""
        self.key_label.setText(key + MODE_NAMES.get(s.session.mode, s.session.mode))

    def _show_input(self, s: LiveSnapshot) -> None:
        """The input light: on for INPUT_LIGHT_S after anything the player sent arrived."""
        now = time.monotonic()
        if s.received != self._last_received:
            self._last_received = s.received
            self._lit_until = now + INPUT_LIGHT_S
        on = now < self._lit_until
        if self.input_light.property("active") != on:
            self.input_light.setProperty("active", on)
            self.input_light.style().unpolish(self.input_light)
            self.input_light.style().polish(self.input_light)

    def _show_params(self, s: LiveSnapshot) -> None:
        """Follow parameter changes made elsewhere (MIDI CC, shortcuts), but never fight the user's hand."""
        p, last = s.params, self._last_params
        self._last_params = p
        now = time.monotonic()

        def follow(name: str) -> bool:
            if last is not None and getattr(last, name) == getattr(p, name):
                return False
            return now - self._user_touched.get(name, -1e9) > USER_HOLD_S

        if follow("temperature") and not self.temperature.dragging():
            self.temperature.set_value(p.temperature)
        if follow("top_p") and not self.top_p.dragging():
            self.top_p.set_value(p.top_p)
        for name, widget in (("mode", self.mode), ("phrase_end", self.phrase_end)):
            if follow(name):
                widget.blockSignals(True)
                widget.setCurrentIndex(widget.findData(getattr(p, name)))
                widget.blockSignals(False)
        for name, widget in (("response_bars", self.response_bars), ("silence_beats", self.silence_beats),
                             ("candidates", self.candidates)):
            if follow(name):
                widget.blockSignals(True)
                widget.setValue(getattr(p, name))
                widget.blockSignals(False)
        self.silence_beats.setEnabled(p.phrase_end == "silence")

    def _show_learning(self, s: LiveSnapshot) -> None:
        by_target = {t: cc for cc, t in s.cc_map.items()}
        for target, label in (("temperature", self.temperature.cc_label), ("top_p", self.top_p.cc_label),
                              ("mode", self.mode_cc), ("response_bars", self.bars_cc)):
            if s.learning == target:
                label.setText("move a control…")
            else:
                label.setText(f"CC {by_target[target]}" if target in by_target else "")
        for target, widget in self.learn.widgets.items():
            on = s.learning == target
            if widget.property("learning") != on:
                widget.setProperty("learning", on)
                widget.style().unpolish(widget)
                widget.style().polish(widget)
        if "panic" in by_target:
            self.panic_button.setToolTip(f"All notes off (Esc, CC {by_target['panic']}). Right-click for MIDI learn.")
        if s.learning:
            self.statusBar().showMessage(f"MIDI learn: move a knob or fader to drive {s.learning}…", 500)

    # ------------------------------------------------------------------ shutdown
    def shutdown(self) -> None:
        """Save settings, close the engine (which panics). Safe to call more than once."""
        if self._closed:
            return
        self._closed = True
        self.timer.stop()
        try:
            save_config(self.current_config(), self.controls.params, self.controls.cc_map)
        except Exception:
            pass
        self.engine.close()

    def closeEvent(self, event) -> None:
        self.shutdown()
        super().closeEvent(event)
        self.closed.emit()
