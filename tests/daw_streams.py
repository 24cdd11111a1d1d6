"""Transport streams as DAWs send them, sample by sample: what a master writes to Antiphon In, and, for every
0xF8, the song tick the DAW itself means by it. The tests play them with a native JACK client at exact frames.

What each master sends, from its documentation or source:
- Ardour (libs/ardour/ticker.cc, MidiClockTicker::tick): starting at 0, Start and the first 0xF8 in one frame;
  starting elsewhere, Song Position Pointer at the cycle's first frame and Continue in the frame of the first
  0xF8 (the next MIDI beat); a discontinuity while rolling (a loop, a locate): Stop at the cycle's first frame,
  then the same SPP and Continue; no clock while stopped.
- jack_midi_clock: Start a period before the first 0xF8; Stop; clock only while the transport rolls.
- Reaper, Bitwig, Live (their MIDI clock sync settings): clock may run while stopped; started mid-song they send
  Song Position Pointer then Continue; a loop is a Song Position Pointer alone while the clock runs, or
  Stop/SPP/Continue spread over a few frames.
- Tempo automation: the same messages, the 0xF8s closer or further apart.
- A drum machine or a hardware sequencer without transport: 0xF8 alone.
"""
from __future__ import annotations

from dataclasses import dataclass, field

RATE = 48000
CLOCK, START, CONTINUE, STOP, SONG_POSITION = 0xF8, 0xFA, 0xFB, 0xFC, 0xF2
TRANSPORT = (START, CONTINUE, STOP, SONG_POSITION)
FREE = "free"  # a 0xF8 the DAW sends while not rolling, before any transport: its position is Antiphon's to choose


@dataclass
class Stream:
    """[(frame from the stream's start, message)] and, per 0xF8 in order, the DAW's song tick (None: sent while
    stopped, the position must not move; FREE: no transport yet)."""

    name: str
    events: list[tuple[int, bytes]] = field(default_factory=list)
    ticks: list = field(default_factory=list)
    frame: int = 0  # where the next 0xF8 goes
    position: int = 0  # the DAW's song tick of its next 0xF8
    rolling: bool | None = None  # None: no transport message yet
    bpm: float = 240.0

    @property
    def interval(self) -> int:
        return round(RATE * 60.0 / (self.bpm * 24))

    def _at(self, offset: int | None) -> int:
        """A transport message `offset` frames before the next 0xF8 (None: half an interval before it)."""
        return self.frame - (self.interval // 2 if offset is None else offset)

    def clock(self, n: int = 1, ramp_to: float | None = None) -> "Stream":
        start_bpm = self.bpm
        for k in range(n):
            if ramp_to is not None:
                self.bpm = start_bpm + (ramp_to - start_bpm) * k / max(n - 1, 1)
            self.events.append((self.frame, bytes([CLOCK])))
            self.ticks.append(FREE if self.rolling is None else self.position if self.rolling else None)
            if self.rolling:
                self.position += 1
            self.frame += self.interval
        return self

    def start(self, clock_in_frame: bool = True, offset: int | None = None) -> "Stream":
        """Start; with `clock_in_frame` (Ardour) the first 0xF8 in the same frame, right after it; else the
        message `offset` frames before the next 0xF8 (jack_midi_clock: a period)."""
        self.events.append((self.frame if clock_in_frame else self._at(offset), bytes([START])))
        self.rolling, self.position = True, 0
        return self

    def stop(self, offset: int | None = None) -> "Stream":
        self.events.append((self._at(offset), bytes([STOP])))
        self.rolling = False
        return self

    def resume(self, offset: int | None = None) -> "Stream":
        """Continue: the next 0xF8 is the DAW's position (after Stop, the tick after the last one sent)."""
        self.events.append((self._at(offset), bytes([CONTINUE])))
        self.rolling = True
        return self

    def song_position(self, sixteenths: int, offset: int | None = None) -> "Stream":
        self.events.append((self._at(offset), bytes([SONG_POSITION, sixteenths & 0x7F, (sixteenths >> 7) & 0x7F])))
        self.position = sixteenths * 6
        if self.rolling is None:
            self.rolling = False
        return self

    def play(self, msg: bytes, offset: int) -> "Stream":
        """A message of the DAW's track `offset` frames after the next 0xF8."""
        self.events.append((self.frame + offset, bytes(msg)))
        return self

    def rest(self, frames: int) -> "Stream":
        self.frame += frames
        return self

    @property
    def end(self) -> int:
        return self.frame

    def jumps(self) -> list[int]:
        """Frames of the transport messages (where what sounds must end)."""
        return [f for f, m in self.events if m[0] in TRANSPORT]


BAR = 96  # ticks of a 4/4 bar
PLAYER_ON, PLAYER_OFF = bytes([0x99, 70, 90]), bytes([0x89, 70, 0])  # the player, on channel 10


def streams() -> list[Stream]:
    """The conformance streams. 240 BPM (500 frames a tick) unless the stream says otherwise."""
    out = []
    out.append(Stream("Start with a clock in its frame (Ardour)").start(clock_in_frame=True).clock(2 * BAR).stop())
    out.append(Stream("Start a period before its clock (jack_midi_clock)").start(clock_in_frame=False, offset=64)
               .clock(2 * BAR).stop())
    out.append(Stream("Stop, then Continue, clock running while stopped").start().clock(BAR + 30).stop()
               .clock(40).resume(offset=0).clock(BAR).stop())
    out.append(Stream("Song Position Pointer, then Continue in the frame of its clock, mid-bar (Ardour)")
               .song_position(2 * 16 + 4 + 2, offset=40).resume(offset=0).clock(2 * BAR).stop())
    out.append(Stream("Song Position Pointer, then Continue between clocks, mid-bar").song_position(3 * 16 + 2)
               .resume().clock(BAR).stop())
    out.append(Stream("Loop jump by Song Position Pointer alone while running").start().clock(2 * BAR)
               .song_position(0).clock(2 * BAR).song_position(0).clock(BAR).stop())
    out.append(Stream("Loop jump by Stop, Song Position Pointer, Continue").start().clock(2 * BAR)
               .stop(offset=60).song_position(0, offset=40).resume(offset=20).clock(2 * BAR)
               .stop(offset=40).song_position(0, offset=40).resume(offset=0).clock(BAR).stop())
    out.append(Stream("Clock that starts before Start").clock(30).start(clock_in_frame=False).clock(2 * BAR).stop())
    out.append(Stream("Clock without transport messages").clock(2 * BAR))
    out.append(Stream("The player's note while an answer's note sounds").start().clock(20)
               .play(PLAYER_ON, 100).play(PLAYER_OFF, 3000).clock(BAR - 20).stop())
    ramp = Stream("Tempo ramp from 60 to 180 BPM over 4 bars", bpm=60.0).start().clock(4 * BAR, ramp_to=180.0)
    out.append(ramp.clock(BAR // 2).stop())
    return out
