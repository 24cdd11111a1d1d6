"""Antiphon's MIDI side: ports, the clock follower, the timed sender, the live runner. Owns every thread."""
