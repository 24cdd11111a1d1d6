"""`antiphon generate --style S --input IN.mid --bars N --temperature T --variations K --out OUT.mid`:
continue a MIDI file offline, on the input's tempo and bar grid. OUT.mid plays the input and variation 1, a bar
of rest, the input again and variation 2, and so on: the input on track 1, each variation on a track of its own."""
from __future__ import annotations

import argparse
import dataclasses
import json
from pathlib import Path

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
                   help="continuations to write, 1..32: one after another, each after the input again and a bar of rest")
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

    from antiphon.engine.reading import MIDI_EXTENSIONS, read_midi, reason

    suffix = Path(args.input).suffix.lower()
    if suffix and suffix not in MIDI_EXTENSIONS:
        raise ValueError(f"--input {args.input}: a {suffix} file; generate continues a MIDI file "
                         f"({' '.join(MIDI_EXTENSIONS)})")
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
    conts = [continue_notes(gen.fork(None if args.seed is None else args.seed + k), until, params)
             for k in range(args.variations)]
    bar = meter.ticks_per_bar
    last = max([until] + [n.end for cont in conts for n in cont])
    turn = -(-last // bar) * bar + bar  # one variation after another: the input again after a bar of rest
    repeated, variations, counts, starts = [], [], [], []
    for k, cont in enumerate(conts):
        repeated += [shifted(n, k * turn) for n in notes]
        variations.append((f"{style.name} variation {k + 1}", [shifted(n, k * turn) for n in cont]))
        counts.append(len(cont))
        starts.append(k * turn + end)
    bpm = first_tempo(args.input)
    write_midi(args.out, [("input", repeated), *variations], bpm=bpm, meter=meter)
    summary = {"out": args.out, "bpm": round(bpm, 3), "meter": str(meter), "input_notes": len(notes),
               "continuation_starts_tick": end, "until_tick": until, "notes_per_variation": counts,
               "variation_starts_tick": starts, "ticks_per_bar": bar}
    laid = "" if args.variations == 1 else (
        f"; one after another, each after the input again and a bar of rest (variations start at bars "
        f"{', '.join(str(s // bar + 1) for s in starts)})")
    print(json.dumps(summary) if args.json else
          f"wrote {args.out}: {args.variations} variation(s) of {args.bars} bars after the input "
          f"({', '.join(map(str, counts))} notes) at {bpm:.1f} BPM {meter}{laid}")
    return 0


def shifted(note, ticks: int):
    return dataclasses.replace(note, start=note.start + ticks, end=note.end + ticks)
