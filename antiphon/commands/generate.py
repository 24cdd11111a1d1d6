"""`antiphon generate --style S --input IN.mid --bars N --temperature T --variations K --out OUT.mid`:
continue a MIDI file offline. OUT.mid holds the input on track 1 and each variation on its own track,
starting where the input ends, on the input's tempo and bar grid."""
from __future__ import annotations

import argparse
import json

from antiphon import arguments


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--style", default="default", help="style name or file")
    p.add_argument("--input", required=True, type=arguments.existing_file, help="MIDI file to continue")
    p.add_argument("--bars", type=arguments.bars, default=4,
                   help="bars to generate after the input, 1..64 (as in demo; live calls them --response-bars)")
    p.add_argument("--temperature", type=arguments.temperature, default=arguments.DEFAULT_TEMPERATURE,
                   help="sampling temperature, 0.05..3: higher is wilder")
    p.add_argument("--top-p", type=arguments.top_p, default=arguments.DEFAULT_TOP_P,
                   help="nucleus sampling, 0.05..1: sample only from the likeliest notes that make up this share")
    p.add_argument("--variations", type=arguments.int_in(1, 32), default=1,
                   help="continuations to write, each on its own track, 1..32")
    p.add_argument("--seed", type=int, default=None,
                   help="sampling seed (variation k uses seed + k; default: random)")
    p.add_argument("--out", required=True, type=arguments.writable_file, help="MIDI file to write")
    p.add_argument("--json", action="store_true", help="print a JSON summary")


def run(args) -> int:
    from antiphon.engine.generator import Generator, continue_notes, prime
    from antiphon.engine.midifile import first_tempo, write_midi
    from antiphon.engine.sampler import SamplingParams
    from antiphon.engine.style import load_style
    from antiphon.engine.tokens import clean_notes

    from antiphon.engine.reading import read_midi, reason

    try:
        notes, meter = read_midi(args.input)
    except Exception as exc:  # noqa: BLE001 - any parser failure is the file's fault: say why, as prepare does
        raise ValueError(f"--input {args.input}: {reason(exc)}") from None
    notes = clean_notes(notes)
    if not notes:
        raise ValueError(f"--input {args.input}: no notes to continue")
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
