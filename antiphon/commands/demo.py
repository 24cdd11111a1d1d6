"""`antiphon demo`: a real phrase from the corpus through the live session and model, on an internal
clock, no ports needed; writes call and answer to a MIDI file and a piano-roll PNG."""
from __future__ import annotations

import argparse
import json


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--style", default="default")
    p.add_argument("--piece", default="bach/bwv66.6", help="music21 corpus piece for the call")
    p.add_argument("--part", type=int, default=0, help="which part of the piece plays the call (0 = top)")
    p.add_argument("--bars", type=int, default=4, help="bars of the call")
    p.add_argument("--response-bars", type=int, default=4)
    p.add_argument("--temperature", type=float, default=0.9)
    p.add_argument("--bpm", type=float, default=100.0)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", default="antiphon-demo.mid")
    p.add_argument("--png", default="antiphon-demo.png")
    p.add_argument("--json", action="store_true")


def run(args) -> int:
    from antiphon.engine.fake_time import simulate
    from antiphon.engine.midifile import write_midi
    from antiphon.engine.reading import corpus_phrase
    from antiphon.engine.session import Session, SessionParams
    from antiphon.engine.style import load_style
    from antiphon.pictures import piano_roll_png

    phrase, meter = corpus_phrase(args.piece, args.part, args.bars)
    style = load_style(args.style)
    params = SessionParams(response_bars=args.response_bars, temperature=args.temperature)
    session = Session(style.runtime(), meter, params, seed=args.seed)
    call_end = max(n.end for n in phrase)
    answer = simulate(session, phrase, call_end + (args.response_bars + 2) * meter.ticks_per_bar)
    write_midi(args.out, [("call", phrase), (f"answer ({style.name})", answer)], bpm=args.bpm, meter=meter)
    piano_roll_png(args.png, [("call", phrase, "#2a6fdb"), ("Antiphon's answer", answer, "#e0692b")], meter,
                   f"{args.piece}, {args.bars} bars, answered by style '{style.name}' (T={args.temperature})")
    first = min((n.start for n in answer), default=None)
    summary = {"midi": args.out, "png": args.png, "call_notes": len(phrase), "answer_notes": len(answer),
               "call_ends_tick": call_end, "answer_starts_tick": first,
               "answer_delay_beats": None if first is None else (first - call_end) / meter.ticks_per_beat}
    print(json.dumps(summary) if args.json else
          f"wrote {args.out} and {args.png}: {len(phrase)} call notes, {len(answer)} answer notes, answer "
          f"starting {summary['answer_delay_beats']} beats after the call")
    return 0
