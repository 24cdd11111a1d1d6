"""How good a style is, in words a musician reads: its prediction against the Markov baseline (lower is
better), the share of its generated notes in the piece's key and how often its melodies stall, each beside the
real music's own figure, a verdict and the next command. Used at the end of `train` and by `eval`."""
from __future__ import annotations

from dataclasses import dataclass

from antiphon.engine.answer_measures import key_of_notes, melody
from antiphon.engine.events import Meter, Note
from antiphon.engine.generator import Generator, continue_notes, prime
from antiphon.engine.sampler import SamplingParams
from antiphon.engine.tokens import decode_tokens

from .data import Split
from .realism import STALL_NOTES, longest_stall

PRIME_BARS, CONTINUE_BARS = 4, 4
MAX_PIECES = 24


@dataclass
class Continuations:
    """The style's continuations of held-out pieces against the pieces' own next bars."""
    pieces: int = 0
    notes: int = 0
    in_key: float = 0.0  # share of the generated notes in the piece's key
    real_in_key: float = 0.0
    stalls: int = 0  # continuations whose melody stalls (every three notes in a row on two pitches, 8+ notes)
    real_stalls: int = 0


def _in_key(notes: list[Note], scale) -> tuple[int, int]:
    return sum(n.pitch % 12 in scale for n in notes), len(notes)


def _stalls(notes: list[Note]) -> bool:
    return longest_stall([n.pitch for n in melody(notes)]) >= STALL_NOTES


def continuations(runtime, split: Split, temperature: float = 1.0, top_p: float = 0.95, seed: int = 0,
                  meter: Meter = Meter()) -> Continuations:
    """Each held-out piece (up to MAX_PIECES) primed with its first PRIME_BARS bars and continued for
    CONTINUE_BARS, with the style's own sampling; the piece's key is read from the whole piece."""
    bar = meter.ticks_per_bar
    cut, until = PRIME_BARS * bar, (PRIME_BARS + CONTINUE_BARS) * bar
    out = Continuations()
    hit = real_hit = real_total = 0
    pieces = split.pieces[:MAX_PIECES]
    rounds = max(1, min(8, 16 // max(len(pieces), 1)))  # a few held-out pieces: several continuations of each
    for k, (tokens, _) in enumerate([p for p in pieces for _ in range(rounds)]):
        notes = decode_tokens(tokens, meter)
        if not notes:
            continue
        start = min(n.start for n in notes)
        notes = [Note(n.start - start, n.end - start, n.pitch, n.velocity) for n in notes]
        call = [Note(n.start, min(n.end, cut), n.pitch, n.velocity) for n in notes if n.start < cut]
        real = [n for n in notes if cut <= n.start < until]
        if not call or not real:
            continue
        scale = key_of_notes(notes).scale
        gen = Generator(runtime, meter, seed=seed + k)
        prime(gen, call)
        made = [n for n in continue_notes(gen, until, SamplingParams(temperature=temperature, top_p=top_p))
                if n.start >= cut]
        h, t = _in_key(made, scale)
        rh, rt = _in_key(real, scale)
        hit, out.notes = hit + h, out.notes + t
        real_hit, real_total = real_hit + rh, real_total + rt
        out.stalls += _stalls(made)
        out.real_stalls += _stalls(real)
        out.pieces += 1  # continuations (a piece continued `rounds` times counts `rounds` times)
    out.in_key = hit / out.notes if out.notes else 0.0
    out.real_in_key = real_hit / real_total if real_total else 0.0
    return out


def verdict(nll: float, markov_nll: float | None, cont: Continuations) -> tuple[bool, str]:
    """(ready, the line): better than the baseline and mostly in key is ready to play."""
    if markov_nll is not None and nll >= markov_nll:
        return False, ("worse than the baseline (a Markov model of the same files predicts them better): train "
                       "longer (--epochs), fine-tune the default style (--from default), or bring more files")
    if cont.pieces and cont.in_key < 0.7 * max(cont.real_in_key, 0.5):
        return False, ("it predicts better than the baseline, but its notes leave the key far more often than the "
                       "music's own: train longer, or fine-tune the default style (--from default)")
    return True, "better than the baseline: ready to play"


def report(name: str, split_name: str, scores: dict, markov: dict | None, cont: Continuations,
           next_command: str) -> list[str]:
    """The lines printed: a short table in words, the verdict and the next command."""
    nll = scores["nll_per_event"]
    lines = [f"How good {name} is, on the {split_name} split ({scores.get('events', 0)} events):"]
    base = (f"; the Markov baseline {markov['nll_per_event']:.2f}" if markov else "")
    lines.append(f"  prediction   {nll:.2f} nats per event (lower is better){base}")
    if cont.pieces:
        lines.append(f"  notes in key {100 * cont.in_key:.0f} % of {cont.notes} generated notes "
                     f"(the real music: {100 * cont.real_in_key:.0f} %)")
        lines.append(f"  stalls       {cont.stalls} of {cont.pieces} continuations stall on one or two pitches "
                     f"(the real music: {cont.real_stalls} of {cont.pieces})")
    else:
        lines.append(f"  notes in key not measured: no held-out piece is longer than {PRIME_BARS + 1} bars")
    ok, line = verdict(nll, markov["nll_per_event"] if markov else None, cont)
    lines.append(f"verdict: {line}")
    lines.append(f"next: {next_command}" if ok else f"next: what the verdict says, or play it as it is: {next_command}")
    return lines
