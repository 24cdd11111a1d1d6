"""`antiphon generate --style S --input IN.mid --bars N --temperature T --variations K --out OUT.mid`:
continue a MIDI file offline. OUT.mid holds the input on track 1 and each variation on its own track,
starting where the input ends, on the input's tempo and bar grid."""
from __future__ import annotations

import argparse
import json


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--style", default="default", help="style name or file (default: the shipped style)")
    p.add_argument("--input", required=True, help="MIDI file to continue")
    p.add_argument("--bars", type=int, default=4, help="bars to add (default 4)")
    p.add_argument("--temperature", type=float, default=1.0)
    p.add_argument("--top-p", type=float, default=0.95)
    p.add_argument("--variations", type=int, default=1)
    p.add_argument("--seed", type=int, default=None)
    p.add_argument("--out", required=True, help="MIDI file to write")
    p.add_argument("--json", action="store_true")


def run(args) -> int:
    from antiphon.engine.generator import Generator, continue_notes, prime
    from antiphon.engine.midifile import first_tempo, write_midi
    from antiphon.engine.sampler import SamplingParams
    from antiphon.engine.style import load_style
    from antiphon.engine.tokens import clean_notes

    from antiphon.engine.reading import read_midi

    if args.bars < 1 or args.variations < 1:
        raise ValueError("--bars and --variations must be at least 1")
    notes, meter = read_midi(args.input)
    notes = clean_notes(notes)
    if not notes:
        raise ValueError(f"{args.input}: no notes to continue")
    style = load_style(args.style)
    gen = Generator(style.runtime(), meter, seed=args.seed)
    prime(gen, notes)
    end = max(n.end for n in notes)
    until = end + args.bars * meter.ticks_per_bar
    params = SamplingParams(temperature=args.temperature, top_p=args.top_p)
    parts = [("input", notes)]
    counts = []
    for k in range(args.variations):
        fork = gen.fork(None if args.seed is None else args.seed + k)
        cont = continue_notes(fork, until, params)
        parts.append((f"{style.name} variation {k + 1}", cont))
        counts.append(len(cont))
    bpm = first_tempo(args.input)
    write_midi(args.out, parts, bpm=bpm, meter=meter)
    summary = {"out": args.out, "bpm": round(bpm, 3), "meter": str(meter), "input_notes": len(notes),
               "continuation_starts_tick": end, "until_tick": until, "notes_per_variation": counts}
    print(json.dumps(summary) if args.json else
          f"wrote {args.out}: {args.variations} variation(s) of {args.bars} bars after the input "
          f"({', '.join(map(str, counts))} notes) at {bpm:.1f} BPM {meter}")
    return 0
