"""A knob for a float parameter: title, dial, numeric readout (and the CC it is bound to)."""
from __future__ import annotations

from PyQt6.QtCore import Qt, pyqtSignal
from PyQt6.QtWidgets import QDial, QLabel, QVBoxLayout, QWidget

STEPS = 1000


class Knob(QWidget):
    valueChanged = pyqtSignal(float)  # only for changes the user makes (not set_value)

    def __init__(self, title: str, lo: float, hi: float, value: float, fmt: str = "{:.2f}", parent=None):
        super().__init__(parent)
        self.lo, self.hi, self.fmt = float(lo), float(hi), fmt
        self.title = QLabel(title)
        self.title.setAlignment(Qt.AlignmentFlag.AlignCenter)
        self.dial = QDial()
        self.dial.setRange(0, STEPS)
        self.dial.setSingleStep(STEPS // 200)
        self.dial.setPageStep(STEPS // 20)
        self.dial.setNotchesVisible(True)
        self.dial.setNotchTarget(12.0)
        self.dial.setWrapping(False)
        self.dial.setFixedSize(64, 64)
        self.readout = QLabel()
        self.readout.setAlignment(Qt.AlignmentFlag.AlignCenter)
        self.readout.setObjectName("readout")
        self.cc_label = QLabel("")
        self.cc_label.setAlignment(Qt.AlignmentFlag.AlignCenter)
        self.cc_label.setObjectName("cc")
        lay = QVBoxLayout(self)
        lay.setContentsMargins(4, 2, 4, 2)
        lay.setSpacing(1)
        lay.addWidget(self.title)
        lay.addWidget(self.dial, alignment=Qt.AlignmentFlag.AlignHCenter)
        lay.addWidget(self.readout)
        lay.addWidget(self.cc_label)
        self.set_value(value)
        self.dial.valueChanged.connect(self._on_dial)

    def _to_steps(self, value: float) -> int:
        return round((min(max(value, self.lo), self.hi) - self.lo) / (self.hi - self.lo) * STEPS)

    def value(self) -> float:
        return self.lo + (self.hi - self.lo) * self.dial.value() / STEPS

    def set_value(self, value: float) -> None:
        """Show `value` (e.g. a change made by MIDI CC) without emitting valueChanged."""
        self.dial.blockSignals(True)
        self.dial.setValue(self._to_steps(value))
        self.dial.blockSignals(False)
        self.readout.setText(self.fmt.format(value))

    def dragging(self) -> bool:
        return self.dial.isSliderDown()

    def _on_dial(self, steps: int) -> None:
        v = self.value()
        self.readout.setText(self.fmt.format(v))
        self.valueChanged.emit(v)
