"""antiphon.engine: tokens, the stateful LSTM and its realtime step, sampling, the session, reading and writing
MIDI files, the fake-time driver. Imports none of the other parts (no ports, no Qt, no training code); runs
from tests with fake time."""
