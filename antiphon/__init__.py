"""Antiphon, a live AI duet partner over MIDI: one namespace holding the four parts and the command shell.

    antiphon.engine    tokens, the stateful LSTM, sampling, the session (pure: imports none of the others)
    antiphon.plugin    ports, clock follower, timed sender, the live runner (imports antiphon.engine)
    antiphon.gui       the PyQt6 panel (reads snapshots, writes parameters: antiphon.plugin, antiphon.engine)
    antiphon.training  prepare, train, evaluate, style files (imports antiphon.engine)
    antiphon.cli, antiphon.commands
                       the command shell: the only code that wires the four together
"""
__version__ = "0.2.0"
