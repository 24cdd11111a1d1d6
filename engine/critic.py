"""The critic: chooses one of the planner's candidate answers, and says why.

Each candidate gets a score, the weighted sum of explainable terms (every term is in `Choice.terms`):

    log_likelihood       the model's own log-likelihood of the candidate, per token
    key_fit              share of its notes in the call's key (Krumhansl key of the call)
    pitch_class_kinship  correlation of its pitch-class histogram with the call's
    register             minus the distance of its median pitch from the call's (octaves)
    onsets               share of its onsets at bar positions where the call has onsets
    density              minus |log| of its onsets per beat over the call's
    polyphony            minus |its mean polyphony - the call's|
    loop                 minus how far its melody's longest run on two pitches goes past 4 notes, in 4s
                         (-1 for the 8-note loop the answer benchmark counts; E-D#-E-D#, C-C-C-C...)
    echo                 -1 when it copies 6+ notes of the call unchanged (an echo is not an answer)
    cadence              1 when it ends on a note of the tonic triad
    strong_ending        1 when its last onset is on a strong beat
    silent               -1 when it plays nothing
    realism              the discriminator's log-odds that the candidate is a real continuation rather than
                         the style's own sample (engine/discriminator.py; 0 for a style without one)

Weights are fit on valid data (`antiphon fit-critic`, training/critic_fit.py) and stored in a style's
metadata under "critic"; DEFAULT_WEIGHTS work for any style. Constraints are hard filters applied first
(no loop, always; `--end-on`, `--register`, `--key-lock`), with a fallback: when no candidate passes them
all, they are dropped one at a time, the least important first (key lock, register, ending, no loop).
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from . import answer_measures as am
from .discriminator import CallSummary, Discriminator, features
from .events import Meter, Note

TERMS = ("log_likelihood", "key_fit", "pitch_class_kinship", "register", "onsets", "density", "polyphony", "loop",
         "echo", "cadence", "strong_ending", "silent", "realism")
# fit for K=16 on the valid calls of bach, folk and fiddle with the default style (32 candidates each, kinship
# 1, the rules no-loop and register follow applied; bach and fiddle calls three times each, with three seeds:
# 298 plans), margin 0.5: `antiphon fit-critic --style default --out runs/critic.style` fits the same way;
# then the register's weight x4 (0.56 -> 2.25), the valid benchmark's fiddle answers sitting 0.05 semitones
# further from the call than the tunes' own continuations
DEFAULT_WEIGHTS = {"log_likelihood": 1.0, "key_fit": 7.96, "pitch_class_kinship": 1.5, "register": 2.25,
                   "onsets": 6.0, "density": 0.125, "polyphony": 0.1663, "loop": 0.1055, "echo": 1.0,
                   "cadence": 0.0312, "strong_ending": 0.0, "silent": 10.0, "realism": 0.0}
END_ON = ("stable", "tonic", "any")
REGISTER = ("follow", "free")
FOLLOW_SEMITONES = 7.0  # --register follow: the answer's median pitch within this of the call's


@dataclass(frozen=True)
class Constraints:
    end_on: str = "any"
    register: str = "free"
    key_lock: bool = False

    def validated(self) -> "Constraints":
        if self.end_on not in END_ON:
            raise ValueError(f"end_on must be one of {END_ON}, got {self.end_on!r}")
        if self.register not in REGISTER:
            raise ValueError(f"register must be one of {REGISTER}, got {self.register!r}")
        return self


def discriminator_from(meta: dict | None) -> Discriminator | None:
    """A style's realism discriminator (its metadata's "critic": {"discriminator": {...}}), checked; None
    when it has none."""
    critic = (meta or {}).get("critic")
    return Discriminator.from_meta(critic.get("discriminator")) if isinstance(critic, dict) else None


def weights_from(meta: dict | None) -> dict[str, float]:
    """A style's critic weights (its metadata's "critic": {"weights": {...}}), checked; the defaults for
    what it leaves out."""
    weights = dict(DEFAULT_WEIGHTS)
    critic = (meta or {}).get("critic")
    if critic is None:
        return weights
    if not isinstance(critic, dict):
        raise ValueError("the critic must be an object")
    given = critic.get("weights", {})
    if not isinstance(given, dict) or set(given) - set(TERMS):
        raise ValueError(f"critic weights must be an object with keys from {TERMS}")
    for name, w in given.items():
        if not (type(w) in (int, float) and math.isfinite(w) and abs(w) <= 1000):
            raise ValueError(f"critic weight {name} must be a finite number within ±1000, got {w!r}")
        weights[name] = float(w)
    return weights


@dataclass
class Call:
    """What the answer answers: the player's notes (stream ticks), their meter and key."""

    notes: list[Note]
    meter: Meter
    key: am.Key = None  # type: ignore[assignment]
    span: int = 0  # ticks the call lasted

    def __post_init__(self):
        if self.key is None:
            self.key = am.key_of_notes(self.notes)
        if not self.span and self.notes:
            self.span = max(n.end for n in self.notes) - min(n.start for n in self.notes)
        self._density = am.density(self.notes, max(self.span, 1), self.meter)
        self._polyphony = am.polyphony(self.notes)
        # what every candidate is measured against, measured once
        self._melody = am.melody(self.notes)
        self._weights = am.pitch_class_weights(self.notes)
        self._median = am.median_pitch(self.notes) if self.notes else 0.0
        self._positions = {n.start % self.meter.ticks_per_bar for n in self.notes}
        self._summary = CallSummary.of(self.notes, self.meter, self.key)


def terms(call: Call, notes: list[Note], per_token_log_likelihood: float, span: int,
          line: list[Note] | None = None, realism: float = 0.0) -> dict[str, float]:
    """The critic's terms for one candidate (unweighted). `line`: its melody, if known; `realism`: the
    discriminator's log-odds for it (see `realism_terms`)."""
    if not notes:
        return dict.fromkeys(TERMS, 0.0) | {"log_likelihood": per_token_log_likelihood, "silent": -1.0,
                                             "realism": realism}
    line = am.melody(notes) if line is None else line
    d = am.density(notes, span, call.meter)
    return {
        "log_likelihood": per_token_log_likelihood,
        "key_fit": am.key_fit(notes, call.key),
        "pitch_class_kinship": am.pitch_class_kinship(call.notes, notes, call._weights),
        "register": -am.register_distance(call.notes, notes, call._median) / 12.0,
        "onsets": am.onset_share(call.notes, notes, call.meter, call._positions),
        "density": -abs(math.log((d + 0.1) / (call._density + 0.1))),
        "polyphony": -abs(am.polyphony(notes) - call._polyphony),
        "loop": -max(0, am.longest_two_pitch_run(notes, line) - 4) / 4.0,
        "echo": -float(am.longest_echo(call.notes, notes, call._melody, line) >= am.ECHO_NOTES),
        "cadence": float(am.ends_on(notes, call.key, "stable", line)),
        "strong_ending": float(am.ends_on_strong_beat(notes, call.meter, line)),
        "silent": 0.0,
        "realism": realism,
    }


def realism_terms(call: Call, candidates: list[list[Note]], start: int | None, span: int,
                  discriminator: Discriminator | None, lines: list[list[Note]] | None = None) -> np.ndarray:
    """The discriminator's log-odds for each candidate (zeros without one). `start`: the answer's first tick
    (default: the earliest onset among the candidates)."""
    if discriminator is None or not candidates:
        return np.zeros(len(candidates))
    if start is None:
        start = min((n.start for notes in candidates for n in notes), default=0)
    lines = lines or [am.melody(notes) for notes in candidates]
    x = np.array([features(call._summary, notes, call.meter, start, span, line)
                  for notes, line in zip(candidates, lines)])
    return discriminator.log_odds(x)


def passes(call: Call, notes: list[Note], c: Constraints, line: list[Note] | None = None) -> list[bool]:
    """Each hard constraint: no loop (always: 8+ melody notes on two pitches is never an answer), end_on,
    register, key_lock. `line`: the candidate's melody, if known."""
    line = am.melody(notes) if line is None else line
    return [not am.loops(notes, line=line),
            c.end_on == "any" or am.ends_on(notes, call.key, c.end_on, line),
            c.register == "free" or (bool(notes) and am.register_distance(call.notes, notes, call._median)
                                     <= FOLLOW_SEMITONES),
            not c.key_lock or am.key_fit(notes, call.key) == 1.0]


@dataclass
class Choice:
    index: int
    score: float
    terms: dict[str, float]  # weighted
    passed: list[bool]  # the constraints the chosen candidate met (no loop, end_on, register, key_lock)
    candidates: int
    scores: list[float] = field(default_factory=list)

    def explain(self) -> dict:
        """JSON-ready: the chosen candidate, its weighted terms, how it stood among the others."""
        return {"chosen": self.index, "of": self.candidates, "score": round(self.score, 4),
                "terms": {k: round(v, 4) for k, v in self.terms.items()},
                "constraints_met": dict(zip(("no_loop", "end_on", "register", "key_lock"), self.passed)),
                "score_range": [round(min(self.scores), 4), round(max(self.scores), 4)] if self.scores else []}

    def summary(self) -> str:
        """One line for the panel: the terms that weighed most."""
        top = sorted(self.terms.items(), key=lambda kv: -abs(kv[1]))[:3]
        return f"#{self.index + 1}/{self.candidates} " + " ".join(f"{k.replace('_', ' ')} {v:+.2f}" for k, v in top)


def choose(call: Call, candidates: list[tuple[list[Note], float]], span: int, weights: dict[str, float] | None = None,
           constraints: Constraints = Constraints(), discriminator: Discriminator | None = None,
           start: int | None = None) -> Choice:
    """candidates: (notes, per-token log-likelihood) each. The best by score among those keeping the rules
    (see the module's docstring for the order they are dropped in). `start`: the answer's first tick."""
    weights = weights or DEFAULT_WEIGHTS
    lines = [am.melody(notes) for notes, _ in candidates]
    real = realism_terms(call, [n for n, _ in candidates], start, span, discriminator, lines)
    all_terms = [terms(call, notes, ll, span, line, float(r))
                 for (notes, ll), line, r in zip(candidates, lines, real)]
    scores = [sum(weights.get(k, 0.0) * v for k, v in t.items()) for t in all_terms]
    met = [passes(call, notes, constraints, line) for (notes, _), line in zip(candidates, lines)]
    # when no candidate keeps every rule, the rules are dropped one at a time, the least important first
    # (key lock, register, ending); the loop rule goes last
    for kept in (4, 3, 2, 1, 0):
        pool = [i for i, m in enumerate(met) if all(m[:kept])]
        if pool:
            break
    best = max(pool, key=lambda i: scores[i])
    weighted = {k: weights.get(k, 0.0) * v for k, v in all_terms[best].items()}
    return Choice(best, scores[best], weighted, met[best], len(candidates), scores)


def term_matrix(call: Call, candidates: list[tuple[list[Note], float]], span: int,
                discriminator: Discriminator | None = None, start: int | None = None) -> np.ndarray:
    """(candidates, len(TERMS)): every candidate's terms, for fitting the weights."""
    real = realism_terms(call, [n for n, _ in candidates], start, span, discriminator)
    return np.array([[terms(call, n, ll, span, realism=float(r))[k] for k in TERMS]
                     for (n, ll), r in zip(candidates, real)])
