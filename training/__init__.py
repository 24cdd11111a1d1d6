"""Offline: read music, prepare token arrays, train, evaluate, write style files."""
