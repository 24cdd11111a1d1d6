"""MIDI learn: right-click a control -> "MIDI learn" -> the next CC received on the input drives it.

The binding itself happens on the engine thread (Controls.apply_cc binds the next CC while
Controls.learn(target) is pending); the panel only asks, then shows what the snapshot reports.
"""
from __future__ import annotations

from PyQt6.QtCore import Qt
from PyQt6.QtWidgets import QMenu, QWidget

LEARN_TEXT = "MIDI learn"
CANCEL_TEXT = "Cancel MIDI learn"


class LearnMenus:
    """Context menus offering MIDI learn on the widgets registered with `attach`."""

    def __init__(self, get_controls):
        self._get_controls = get_controls  # the engine can be restarted: always ask for the current one
        self.widgets: dict[str, QWidget] = {}
        self.last_menu: QMenu | None = None

    def attach(self, widget: QWidget, target: str, *children: QWidget) -> None:
        self.widgets[target] = widget
        for w in (widget, *children):
            w.setContextMenuPolicy(Qt.ContextMenuPolicy.CustomContextMenu)
            w.customContextMenuRequested.connect(lambda pos, w=w: self.popup(target, w.mapToGlobal(pos)))

    def menu(self, target: str) -> QMenu:
        controls = self._get_controls()
        menu = QMenu(self.widgets.get(target))
        bound = [cc for cc, t in controls.cc_map.items() if t == target]
        learn = menu.addAction(LEARN_TEXT + (f" (now CC {bound[0]})" if bound else ""))
        learn.triggered.connect(lambda: controls.learn(target))
        if controls.learning is not None:
            cancel = menu.addAction(CANCEL_TEXT)
            cancel.triggered.connect(lambda: controls.learn(None))
        self.last_menu = menu
        return menu

    def popup(self, target: str, global_pos) -> QMenu:
        menu = self.menu(target)
        menu.popup(global_pos)
        return menu

    def action(self, text: str):
        """The action of the last menu whose text starts with `text` (for tests and shortcuts)."""
        for a in self.last_menu.actions() if self.last_menu else ():
            if a.text().startswith(text):
                return a
        return None
