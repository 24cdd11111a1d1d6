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


def corpus_phrase(piece: str, part: int, bars: int):
    """The first `bars` bars of one part of a music21 corpus piece, as notes from tick 0, and its meter."""
    from music21 import corpus

    from training.sources import score_notes

    score = corpus.parse(piece)
    if hasattr(score, "scores"):  # an Opus (an ABC file of many tunes): its first tune
        score = score.scores[0]
    parts = list(score.parts) or [score]
    notes, meter = score_notes(parts[min(part, len(parts) - 1)])
    if not notes:
        raise ValueError(f"{piece}: no notes")
    first = min(n.start for n in notes)
    bar = meter.ticks_per_bar
    origin = first // bar * bar
    end = origin + bars * bar
    from engine.events import Note

    phrase = [Note(n.start - origin, min(n.end, end) - origin, n.pitch, 90) for n in notes if n.start < end]
    return phrase, meter


def simulate(session, phrase, until_tick: int):
    """Drives the session tick by tick like the live runner: returns the answer's notes."""
    from engine.events import Note

    events = sorted([(n.start, 1, n.pitch, n.velocity) for n in phrase] + [(n.end, 0, n.pitch, 0) for n in phrase])
    scheduled: list = []
    i = 0
    for now in range(until_tick + 1):
        while i < len(events) and events[i][0] <= now:
            tick, on, pitch, vel = events[i]
            out = session.note_on(tick, pitch, vel) if on else session.note_off(tick, pitch)
            scheduled = _take(scheduled, out)
            i += 1
        scheduled = _take(scheduled, session.advance(now))
    scheduled = _take(scheduled, session.stop())
    open_notes, answer = {}, []
    for tick, pitch, vel in sorted(scheduled, key=lambda e: (e[0], e[2] > 0)):
        if vel:
            open_notes.setdefault(pitch, (tick, vel))
        elif pitch in open_notes:
            start, v = open_notes.pop(pitch)
            if tick > start:
                answer.append(Note(start, tick, pitch, v))
    return sorted(answer)


def _take(scheduled, out):
    if out.cancel_from is not None:
        scheduled = [e for e in scheduled if e[0] < out.cancel_from]
    return scheduled + [(n.tick, n.pitch, n.velocity) for n in out.notes]


def piano_roll_png(path: str, parts: list[tuple[str, list, str]], meter, title: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.patches import Rectangle

    fig, ax = plt.subplots(figsize=(11, 4), dpi=110)
    lo, hi, end = 127, 0, 0
    for label, notes, colour in parts:
        for n in notes:
            ax.add_patch(Rectangle((n.start / 24, n.pitch - 0.4), (n.end - n.start) / 24, 0.8, color=colour,
                                   alpha=0.85, lw=0))
            lo, hi, end = min(lo, n.pitch), max(hi, n.pitch), max(end, n.end)
        ax.plot([], [], color=colour, lw=6, label=f"{label} ({len(notes)} notes)")
    beats_per_bar = meter.ticks_per_bar / 24
    for b in range(0, int(end / 24 / beats_per_bar) + 2):
        ax.axvline(b * beats_per_bar, color="#999", lw=0.6)
    ax.set_xlim(0, end / 24 + 0.5)
    ax.set_ylim(lo - 2, hi + 2)
    ax.set_xlabel("quarter notes")
    ax.set_ylabel("MIDI pitch")
    ax.set_title(title)
    ax.legend(loc="upper right")
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


def run(args) -> int:
    from engine.midifile import write_midi
    from engine.session import Session, SessionParams
    from engine.style import load_style

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
