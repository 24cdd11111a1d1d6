"""Settings that persist between runs (QSettings, organisation 'Antiphon', application 'Antiphon').

What the command line says explicitly wins: a saved value replaces a LiveConfig field only where the
field still holds its default (the command line's defaults are LiveConfig's). So `antiphon live`
comes back the way it was left, and `antiphon live --temperature 0.5` still means 0.5.
"""
from __future__ import annotations

import os
from dataclasses import replace

from PyQt6.QtCore import QSettings

from antiphon.engine.session import MODES, PHRASE_END_RULES, SessionParams
from antiphon.engine.style import resolve_style
from antiphon.plugin.live import LEARNABLE, LiveConfig

ORGANISATION = APPLICATION = "Antiphon"
PARAM_KEYS = ("mode", "temperature", "top_p", "response_bars", "phrase_end", "candidates")
BPM_RANGE = (20.0, 400.0)  # the panel's tempo box; the same range `antiphon live --bpm` accepts
_DEFAULT_CONFIG = LiveConfig()
_DEFAULT_PARAMS = SessionParams()


def qsettings() -> QSettings:
    return QSettings(ORGANISATION, APPLICATION)


def _get(s: QSettings, key: str, kind):
    value = s.value(key)
    if value is None or value == "":
        return None
    try:
        if kind is bool:
            return value if isinstance(value, bool) else str(value).lower() in ("1", "true", "yes")
        return kind(value)
    except (TypeError, ValueError):
        return None


def encode_cc_map(cc_map) -> str:
    items = cc_map.items() if isinstance(cc_map, dict) else cc_map
    return ",".join(f"{int(cc)}:{target}" for cc, target in sorted(items))


def decode_cc_map(text: str) -> tuple[tuple[int, str], ...] | None:
    pairs = []
    for item in (text or "").split(","):
        cc, _, target = item.partition(":")
        if cc.strip().isdigit() and 0 <= int(cc) <= 127 and target in LEARNABLE:
            pairs.append((int(cc), target))
    return tuple(pairs) if pairs else None


def load_config(config: LiveConfig, s: QSettings | None = None) -> LiveConfig:
    """`config` with the saved settings filled in where it holds defaults."""
    s = s or qsettings()
    params = config.params
    kinds = {"mode": str, "temperature": float, "top_p": float, "response_bars": int, "phrase_end": str,
             "candidates": int}
    changes = {}
    for key in PARAM_KEYS:
        saved = _get(s, f"params/{key}", kinds[key])
        if saved is None or getattr(params, key) != getattr(_DEFAULT_PARAMS, key):
            continue
        if (key == "mode" and saved not in MODES) or (key == "phrase_end" and saved not in PHRASE_END_RULES):
            continue
        changes[key] = saved
    if changes:
        config = replace(config, params=replace(params, **changes).validated())
    top = {"style": str, "backend": str, "in_port": str, "out_port": str, "channel": int, "passthrough": bool,
           "bpm": float}
    changes = {}
    for key, kind in top.items():
        if getattr(config, key) != getattr(_DEFAULT_CONFIG, key):
            continue
        saved = _get(s, key, kind)
        if saved is not None:
            changes[key] = saved
    if "style" in changes and not _style_exists(changes["style"]):
        del changes["style"]  # a style file moved or deleted since: keep the default
    if "channel" in changes:
        changes["channel"] = max(0, min(15, changes["channel"]))
    if "bpm" in changes and not BPM_RANGE[0] <= changes["bpm"] <= BPM_RANGE[1]:
        del changes["bpm"]
    if config.cc_map == _DEFAULT_CONFIG.cc_map:
        cc_map = decode_cc_map(str(s.value("cc_map") or ""))
        if cc_map is not None:
            changes["cc_map"] = cc_map
    return replace(config, **changes) if changes else config


def _style_exists(name: str) -> bool:
    try:
        resolve_style(name)
        return True
    except (OSError, ValueError):
        return False


def save_config(config: LiveConfig, params: SessionParams, cc_map: dict, s: QSettings | None = None) -> None:
    s = s or qsettings()
    for key in PARAM_KEYS:
        s.setValue(f"params/{key}", getattr(params, key))
    for key in ("backend", "channel", "passthrough", "bpm"):
        s.setValue(key, getattr(config, key))
    style = config.style
    if os.sep in style or os.path.isfile(style):  # a style file: absolute, so any working folder finds it
        style = os.path.abspath(os.path.expanduser(style))
    s.setValue("style", style)
    for key in ("in_port", "out_port"):
        s.setValue(key, getattr(config, key) or "")
    s.setValue("cc_map", encode_cc_map(cc_map))
    s.sync()

