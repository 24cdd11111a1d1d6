"""MIDI to audio with FluidSynth and a General MIDI soundfont, for ears without a synth (`antiphon demo`).

The `fluidsynth` command renders a MIDI file faster than real time (`-F`), needs nothing from PyPI and
comes with every Linux distribution and Homebrew; the PyPI binding would need the same shared library
and a player loop of our own. The rendered audio is then cut (or padded with silence) to exactly the
music's length plus RELEASE_TAIL_S, so the file's duration is a known figure: fluidsynth itself runs on
until every voice and the reverb have died away, a length that depends on the soundfont.
"""
from __future__ import annotations

import io
import os
import shutil
import subprocess
import tempfile
import wave
from pathlib import Path

import numpy as np

from antiphon.engine.atomic import atomic_write_bytes

RELEASE_TAIL_S = 1.5  # after the last note-off: the release rings out, faded to silence over FADE_S
FADE_S = 0.5
SAMPLE_RATE = 44100
SOUNDFONT_ENV = "ANTIPHON_SOUNDFONT"
SOUNDFONTS = (  # General MIDI soundfonts where the usual packages install them
    "/usr/share/sounds/sf2/default-GM.sf2",  # Debian/Ubuntu: fluid-soundfont-gm (or another GM font)
    "/usr/share/sounds/sf2/FluidR3_GM.sf2",
    "/usr/share/soundfonts/default.sf2",  # Fedora
    "/usr/share/soundfonts/FluidR3_GM.sf2",  # Fedora, Arch (soundfont-fluid)
    "/usr/share/sounds/sf2/TimGM6mb.sf2",
    "/opt/homebrew/share/soundfonts/default.sf2",
    "/usr/local/share/soundfonts/default.sf2",
)
HOW_TO_GET = ("install FluidSynth and a General MIDI soundfont (Debian/Ubuntu: sudo apt install fluidsynth "
              "fluid-soundfont-gm; Fedora: sudo dnf install fluidsynth fluid-soundfont-gm; macOS: brew install "
              "fluid-synth, then pass --soundfont FILE.sf2)")


def find_fluidsynth() -> str | None:
    return shutil.which("fluidsynth")


def find_soundfont(explicit: str | None = None) -> str | None:
    """The soundfont asked for (--soundfont, then $ANTIPHON_SOUNDFONT), else the first installed GM one."""
    for wanted in (explicit, os.environ.get(SOUNDFONT_ENV)):
        if wanted:
            return wanted
    return next((p for p in SOUNDFONTS if os.path.isfile(p)), None)


def missing(soundfont: str | None = None) -> str | None:
    """What is missing to render audio here (one line saying how to get it), or None."""
    if find_fluidsynth() is None:
        return f"no fluidsynth command found: {HOW_TO_GET}"
    font = find_soundfont(soundfont)
    if font is None:
        return f"no General MIDI soundfont found: {HOW_TO_GET}"
    if not os.path.isfile(font):
        return f"soundfont {font}: no such file"
    return None


def render_wav(midi_path: str | Path, wav_path: str | Path, length_s: float, soundfont: str | None = None,
               sample_rate: int = SAMPLE_RATE) -> float:
    """Renders `midi_path` to a 16-bit stereo WAV of exactly length_s + RELEASE_TAIL_S seconds (written
    atomically). Returns that duration. Raises RuntimeError with one line when it cannot."""
    problem = missing(soundfont)
    if problem:
        raise RuntimeError(problem)
    font = find_soundfont(soundfont)
    wav_path = Path(wav_path)
    with tempfile.TemporaryDirectory(prefix="antiphon-audio-") as tmp:
        raw = Path(tmp) / "render.wav"
        cmd = [find_fluidsynth(), "-n", "-i", "-q", "-F", str(raw), "-T", "wav", "-r", str(sample_rate),
               "-g", "0.7", font, str(midi_path)]
        try:
            done = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
        except subprocess.TimeoutExpired:
            raise RuntimeError("fluidsynth took more than 5 minutes") from None
        if done.returncode != 0 or not raw.is_file():
            said = " ".join((done.stderr or done.stdout).split())[:200] or f"exit status {done.returncode}"
            raise RuntimeError(f"fluidsynth could not render {midi_path} with {font}: {said}")
        with wave.open(str(raw), "rb") as w:
            channels, width, rate = w.getnchannels(), w.getsampwidth(), w.getframerate()
            frames = w.readframes(w.getnframes())
        if width != 2:
            raise RuntimeError(f"fluidsynth wrote {8 * width}-bit samples, expected 16-bit")
        audio = np.frombuffer(frames, dtype="<i2").reshape(-1, channels)
        audio = fit_length(audio, rate, length_s + RELEASE_TAIL_S)
    buf = io.BytesIO()
    with wave.open(buf, "wb") as w:
        w.setnchannels(channels)
        w.setsampwidth(2)
        w.setframerate(rate)
        w.writeframes(audio.astype("<i2").tobytes())
    atomic_write_bytes(wav_path, buf.getvalue())
    return len(audio) / rate


def fit_length(audio: np.ndarray, rate: int, seconds: float) -> np.ndarray:
    """`audio` (frames, channels) cut or padded with silence to `seconds`, the last FADE_S faded out."""
    n = int(round(seconds * rate))
    out = np.zeros((n, audio.shape[1]), dtype=np.float64)
    out[:min(n, len(audio))] = audio[:n]
    fade = min(n, int(FADE_S * rate))
    if fade:
        out[n - fade:] *= np.linspace(1.0, 0.0, fade)[:, None]
    return np.clip(np.round(out), -32768, 32767).astype(np.int16)


def wav_duration(path: str | Path) -> float:
    with wave.open(str(path), "rb") as w:
        return w.getnframes() / w.getframerate()
