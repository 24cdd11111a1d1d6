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
    echo                 -1 when it copies 6+ notes of the call unchanged (a weight below 0 favours it: tunes
                         take up their opening bars again)
    cadence              1 when it ends on a note of the tonic triad
    strong_ending        1 when its last onset is on a strong beat
    silent               -1 when it plays nothing
    realism              the discriminator's log-odds that the candidate is a real continuation rather than
                         the style's own sample (engine/discriminator.py; 0 for a style without one)

The critic plays a candidate drawn with chance softmax(score) ("sample"): an exponential tilt of the
style's own samples, which with every weight 0 is the model sampling alone. The weights are fitted on valid
calls so that the played answers' terms (and the discriminator's features, folded into its coefficients)
have the real continuations' means (`antiphon fit-critic`, training/critic_fit.py): a weight may be
negative, no term is maximised for its own sake. They are stored in a style's metadata under "critic",
with its discriminator and its choice. A style without a critic of its own (or fitted before the tilt)
takes the best score by DEFAULT_WEIGHTS ("best"). Constraints are hard
filters applied first (no loop, always; `--end-on`, `--register`, `--key-lock`), with a fallback: when no
candidate passes them all, they are dropped one at a time, the least important first (key lock,
register, ending, no loop).
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
# for a style without a critic of its own (jsb-quarter, a style before `antiphon fit-critic`): the weights the
# default style's critic was fitted to by best score, on the valid calls of bach, folk and fiddle (K=16 of 32
# candidates, two seeds, temperature 1.1, top-p 0.95), so that its chosen answers match the real continuations
# two-sided; they need no discriminator of the style's own. A fitted style draws from its own tilt ("sample").
DEFAULT_WEIGHTS = {"log_likelihood": 1.0, "key_fit": 3.8933, "pitch_class_kinship": 0.8901, "register": -5.2564,
                   "onsets": 23.5584, "density": 5.7394, "polyphony": 0.1663, "loop": 7.0199, "echo": -10.3853,
                   "cadence": -1.0008, "strong_ending": -8.0294, "silent": 10.0, "realism": 1.1927}
CHOICES = ("sample", "best")
DEFAULT_CHOICE = "best"
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


def choice_from(meta: dict | None) -> str:
    """How a style's critic picks among the candidates (its metadata's "critic": {"choice": ...}): "sample"
    draws one with probability proportional to exp(score), "best" takes the highest score (the rule of a
    style fitted before "sample" existed, and of one without a critic of its own: DEFAULT_WEIGHTS)."""
    critic = (meta or {}).get("critic")
    if not isinstance(critic, dict):
        return DEFAULT_CHOICE
    choice = critic.get("choice", DEFAULT_CHOICE)
    if choice not in CHOICES:
        raise ValueError(f"the critic's choice must be one of {CHOICES}, got {choice!r}")
    return choice


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


# what a term's gain says, when the chosen candidate has more of the term than the others (first) or less
WORDS = {
    "log_likelihood": ("what the style itself finds most likely", "less expected by the style"),
    "key_fit": ("keeps to your key", "steps outside your key, as real answers do"),
    "pitch_class_kinship": ("uses the notes of your call", "brings in notes your call did not use"),
    "register": ("stays near your register", "moves away from your register, as real answers do"),
    "onsets": ("plays on the beats your call used", "moves the rhythm away from your call's"),
    "density": ("as busy as your call", "busier or sparser than your call, as real answers are"),
    "polyphony": ("as many voices as your call", "more or fewer voices than your call"),
    "loop": ("does not circle on two notes", "circles on a few notes"),
    "echo": ("does not copy your call", "takes up your call's opening, as tunes do"),
    "cadence": ("ends on the home chord", "ends away from the home chord"),
    "strong_ending": ("ends on a strong beat", "ends off the strong beat"),
    "silent": ("plays something", "stays silent"),
    "realism": ("sounds most like a real continuation", "sounds less like a real continuation"),
}


@dataclass
class Choice:
    index: int
    score: float
    terms: dict[str, float]  # weighted
    passed: list[bool]  # the constraints the chosen candidate met (no loop, end_on, register, key_lock)
    candidates: int
    scores: list[float] = field(default_factory=list)
    margins: dict[str, float] = field(default_factory=dict)  # weighted terms: the chosen minus the others' mean
    more: dict[str, bool] = field(default_factory=dict)  # per term: the chosen has more of it than the others' mean
    chance: float = 1.0  # the chance it had of being played
    choice: str = "best"

    def explain(self) -> dict:
        """JSON-ready: the chosen candidate, its weighted terms, how it stood among the others."""
        return {"chosen": self.index, "of": self.candidates, "score": round(self.score, 4),
                "choice": self.choice, "chance": round(self.chance, 4),
                "terms": {k: round(v, 4) for k, v in self.terms.items()},
                "constraints_met": dict(zip(("no_loop", "end_on", "register", "key_lock"), self.passed)),
                "score_range": [round(min(self.scores), 4), round(max(self.scores), 4)] if self.scores else [],
                "why": self.reasons()}

    def reasons(self, most: int = 3) -> list[str]:
        """In words, what set the chosen candidate above the others: the terms where it gained most on their
        mean (see WORDS)."""
        gains = sorted(((v, k) for k, v in self.margins.items() if v > 0.05), reverse=True)[:most]
        return [WORDS[k][0 if self.more.get(k, True) else 1] for _, k in gains]

    def summary(self) -> str:
        """One line for the panel: which candidate, and why in words."""
        why = self.reasons()
        drawn = f" (drawn, {self.chance:.0%} chance)" if self.choice == "sample" and self.chance < 1.0 else ""
        return f"#{self.index + 1}/{self.candidates}{drawn}: " + ("; ".join(why) if why else "the only one, or all alike")


def choose(call: Call, candidates: list[tuple[list[Note], float]], span: int, weights: dict[str, float] | None = None,
           constraints: Constraints = Constraints(), discriminator: Discriminator | None = None,
           start: int | None = None, choice: str = "best", rng: np.random.Generator | None = None) -> Choice:
    """candidates: (notes, per-token log-likelihood) each. Among those keeping the rules (see the module's
    docstring for the order they are dropped in), `choice` "best" takes the highest score; "sample" draws one
    with probability proportional to exp(score) from `rng` (the most probable without one). `start`: the
    answer's first tick."""
    weights = weights or DEFAULT_WEIGHTS
    lines = [am.melody(notes) for notes, _ in candidates]
    real = realism_terms(call, [n for n, _ in candidates], start, span, discriminator, lines)
    all_terms = [terms(call, notes, ll, span, line, float(r))
                 for (notes, ll), line, r in zip(candidates, lines, real)]
    scores = [sum(weights.get(k, 0.0) * v for k, v in t.items()) for t in all_terms]
    met = [passes(call, notes, constraints, line) for (notes, _), line in zip(candidates, lines)]
    pool = kept_pool(met, [bool(notes) for notes, _ in candidates])
    chances = selection_chances(np.array(scores)[pool], choice)
    pick = int(rng.choice(len(pool), p=chances)) if choice == "sample" and rng is not None \
        else int(np.argmax(chances))
    best = pool[pick]
    weighted = {k: weights.get(k, 0.0) * v for k, v in all_terms[best].items()}
    others = [i for i in pool if i != best] or [best]
    mean = {k: float(np.mean([all_terms[i][k] for i in others])) for k in weighted}
    margins = {k: weights.get(k, 0.0) * (all_terms[best][k] - mean[k]) for k in weighted}
    more = {k: all_terms[best][k] > mean[k] for k in weighted}
    return Choice(best, scores[best], weighted, met[best], len(candidates), scores, margins, more,
                  float(chances[pick]), choice)


def kept_pool(met: list[list[bool]] | np.ndarray, playing: list[bool] | np.ndarray | None = None) -> list[int]:
    """The candidates the choice is made among: those that play something (a silent one only when all are),
    keeping every rule or, when none does, the rules dropped one at a time, the least important first (key
    lock, register, ending; the loop rule last)."""
    indices = list(range(len(met)))
    if playing is not None and any(playing):
        indices = [i for i in indices if playing[i]]
    for kept in (4, 3, 2, 1, 0):
        pool = [i for i in indices if all(met[i][:kept])]
        if pool:
            return pool
    return []


def selection_chances(scores: np.ndarray, choice: str) -> np.ndarray:
    """Each pooled candidate's chance of being played: softmax of the scores ("sample"), or all on the
    highest ("best")."""
    if choice == "best":
        out = np.zeros(len(scores))
        out[int(np.argmax(scores))] = 1.0
        return out
    z = np.exp(scores - scores.max())
    return z / z.sum()


def term_matrix(call: Call, candidates: list[tuple[list[Note], float]], span: int,
                discriminator: Discriminator | None = None, start: int | None = None) -> np.ndarray:
    """(candidates, len(TERMS)): every candidate's terms, for fitting the weights."""
    real = realism_terms(call, [n for n, _ in candidates], start, span, discriminator)
    return np.array([[terms(call, n, ll, span, realism=float(r))[k] for k in TERMS]
                     for (n, ll), r in zip(candidates, real)])
