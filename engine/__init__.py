"""Antiphon's engine: musical events, tokens, the stateful LSTM, sampling and the session logic.

Imports no MIDI I/O, no Qt and no training code; runs from tests with fake time.
"""
