"""`antiphon demo`: a real phrase from the corpus through the live session and model, on an internal
clock, no ports needed; writes call and answer to a MIDI file, a piano-roll PNG and (with FluidSynth and
a General MIDI soundfont) a WAV to listen to."""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from antiphon import arguments

CALL_PROGRAM, ANSWER_PROGRAM = 0, 73  # General MIDI: the call on the piano, the answer on the flute


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--style", default="default", help="style name or file")
    p.add_argument("--piece", default="bach/bwv66.6", help="music21 corpus piece for the call")
    p.add_argument("--part", type=arguments.int_in(0), default=0, help="which part of the piece plays the call (0 = top)")
    p.add_argument("--call-bars", type=arguments.bars, default=4, help="bars of the piece played as the call, 1..64")
    p.add_argument("--bars", type=arguments.bars, dest="deprecated_bars", metavar="N",
                   help="deprecated name of --call-bars (elsewhere --bars is what Antiphon generates)")
    p.add_argument("--response-bars", type=arguments.bars, default=4, help="bars of the answer, 1..64")
    p.add_argument("--temperature", type=arguments.temperature, default=arguments.DEFAULT_TEMPERATURE,
                   help="sampling temperature, 0.05..3: higher is wilder")
    p.add_argument("--bpm", type=arguments.bpm, default=100.0, help="tempo of the MIDI file and the audio")
    p.add_argument("--seed", type=int, default=0, help="sampling seed")
    p.add_argument("--out", type=arguments.writable_file, default="antiphon-demo.mid", help="MIDI file to write")
    p.add_argument("--png", type=arguments.writable_file, default="antiphon-demo.png", help="piano-roll picture to write")
    p.add_argument("--wav", type=arguments.writable_file,
                   help="audio to write (FluidSynth and a General MIDI soundfont; an error if they are missing) "
                        "(default: OUT with .wav, when they are installed)")
    p.add_argument("--no-wav", action="store_true", help="write no audio")
    p.add_argument("--soundfont", type=arguments.existing_file,
                   help="General MIDI soundfont (.sf2) for the audio (default: $ANTIPHON_SOUNDFONT, else the "
                        "installed one, e.g. Debian's fluid-soundfont-gm)")
    p.add_argument("--json", action="store_true", help="print a JSON summary")


def run(args) -> int:
    from antiphon import audio
    from antiphon.engine.events import TICKS_PER_QUARTER
    from antiphon.engine.fake_time import simulate
    from antiphon.engine.midifile import write_midi
    from antiphon.engine.reading import corpus_phrase
    from antiphon.engine.session import Session, SessionParams
    from antiphon.engine.style import load_style
    from antiphon.pictures import piano_roll_png

    call_bars = args.call_bars
    if args.deprecated_bars is not None:
        print("antiphon demo: --bars is deprecated here, use --call-bars (bars of the call)", file=sys.stderr)
        call_bars = args.deprecated_bars
    wav = None if args.no_wav else args.wav
    if wav is not None and audio.missing(args.soundfont):
        raise RuntimeError(f"--wav {wav}: {audio.missing(args.soundfont)}")
    phrase, meter = corpus_phrase(args.piece, args.part, call_bars)
    style = load_style(args.style)
    params = SessionParams(response_bars=args.response_bars, temperature=args.temperature)
    session = Session(style.runtime(), meter, params, seed=args.seed)
    call_end = max(n.end for n in phrase)
    answer = simulate(session, phrase, call_end + (args.response_bars + 2) * meter.ticks_per_bar)
    write_midi(args.out, [("call", phrase), (f"answer ({style.name})", answer)], bpm=args.bpm, meter=meter,
               programs=[CALL_PROGRAM, ANSWER_PROGRAM])
    piano_roll_png(args.png, [("call", phrase, "#2a6fdb"), ("Antiphon's answer", answer, "#e0692b")], meter,
                   f"{args.piece}, {call_bars} bars, answered by style '{style.name}' (T={args.temperature})")
    end_tick = max(n.end for n in phrase + answer)
    length_s = end_tick / TICKS_PER_QUARTER * 60.0 / args.bpm  # the MIDI file's length: its last note-off
    hint = None
    if wav is None and not args.no_wav:
        if audio.missing(args.soundfont) is None:
            wav = str(Path(args.out).with_suffix(".wav"))
        else:
            hint = f"to hear it, {audio.HOW_TO_GET}, or open {args.out} in any synth or DAW"
    wav_s = audio.render_wav(args.out, wav, length_s, args.soundfont) if wav else None
    first = min((n.start for n in answer), default=None)
    summary = {"midi": args.out, "png": args.png, "wav": wav, "call_notes": len(phrase), "answer_notes": len(answer),
               "call_ends_tick": call_end, "answer_starts_tick": first,
               "answer_delay_beats": None if first is None else (first - call_end) / meter.ticks_per_beat,
               "seconds": round(length_s, 3), "wav_seconds": None if wav_s is None else round(wav_s, 3)}
    files = [f for f in (args.out, args.png, wav) if f]
    written = ", ".join(files[:-1]) + " and " + files[-1]
    print(json.dumps(summary) if args.json else
          f"wrote {written}: {len(phrase)} call notes, {len(answer)} answer notes, answer "
          f"starting {summary['answer_delay_beats']} beats after the call ({length_s:.1f} s at {args.bpm:g} BPM)")
    if hint:
        print(hint, file=sys.stderr)
    return 0
