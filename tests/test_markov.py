"""The interpolated modified Kneser-Ney Markov baseline: normalisation, a reference implementation,
order selection, persistence and real chorales."""
import math
from collections import defaultdict

import numpy as np
import pytest

from antiphon.engine.events import Meter, Note
from antiphon.engine.tokens import BOS, NOTE_OFF, NOTE_ON, TIME_SHIFT, VOCAB_SIZE, Grammar, encode_notes, transpose_tokens
from antiphon.training.markov import MarkovModel, _chen_goodman


def melody(pitches, dur=12):
    notes = [Note(i * dur, (i + 1) * dur, p, 80) for i, p in enumerate(pitches)]
    return encode_notes(notes)[0].astype(np.int64)


def chorale(name):
    from music21 import corpus
    score = corpus.parse(name)
    notes = []
    for n in score.flatten().notes:
        for p in n.pitches:
            start = int(round(float(n.offset) * 24))
            notes.append(Note(start, start + max(1, int(round(float(n.quarterLength) * 24))), p.midi, 80))
    return encode_notes(notes, Meter(4, 4))[0].astype(np.int64)


CHORALES = ["bach/bwv66.6", "bach/bwv1.6", "bach/bwv10.7", "bach/bwv101.7", "bach/bwv102.7", "bach/bwv103.6",
            "bach/bwv104.6", "bach/bwv108.6", "bach/bwv11.6", "bach/bwv110.7", "bach/bwv111.6", "bach/bwv112.5"]


@pytest.fixture(scope="module")
def chorales():
    return [chorale(c) for c in CHORALES]


def random_sequences(rng, n_seq=6, length=80):
    """Token streams from a small random Markov source (no grammar: scored with use_grammar=False)."""
    alphabet = np.array([NOTE_ON + 60, NOTE_ON + 62, NOTE_OFF + 60, TIME_SHIFT + 11, TIME_SHIFT + 23, 300])
    trans = rng.dirichlet(np.full(len(alphabet), 0.3), size=len(alphabet))
    out = []
    for _ in range(n_seq):
        s, state = [BOS], rng.integers(len(alphabet))
        for _ in range(length):
            state = rng.choice(len(alphabet), p=trans[state])
            s.append(alphabet[state])
        out.append(np.array(s, dtype=np.int64))
    return out


def reference_log_probs(train, seq, order):
    """Straightforward dict-based interpolated modified KN (KenLM conventions) to check against."""
    raw = [defaultdict(lambda: defaultdict(int)) for _ in range(order + 1)]
    left = [defaultdict(set) for _ in range(order + 1)]
    init = [defaultdict(int) for _ in range(order + 1)]
    for s in train:
        s = [int(t) for t in s]
        for i in range(1, len(s)):
            for k in range(min(order, i) + 1):
                h, w = tuple(s[i - k:i]), s[i]
                raw[k][h][w] += 1
                if i == k:
                    init[k][(h, w)] += 1
                else:
                    left[k][(h, w)].add(s[i - k - 1])

    def adjusted(k, h, w):
        return raw[k][h][w] if k == order else len(left[k][(h, w)]) + init[k][(h, w)]

    discounts = [_chen_goodman(np.array([adjusted(k, h, w) for h in raw[k] for w in raw[k][h]]))
                 for k in range(order + 1)]

    def prob(w, hist, k):
        if k < 0:
            return 0.0 if w == BOS else 1.0 / (VOCAB_SIZE - 1)
        lower = prob(w, hist, k - 1)
        h = tuple(hist[len(hist) - k:]) if k else ()
        if len(hist) < k or h not in raw[k]:
            return lower
        d = discounts[k]
        counts = {v: adjusted(k, h, v) for v in raw[k][h]}
        total = sum(counts.values())
        gamma = sum(d[min(a, 3) - 1] for a in counts.values()) / total
        a = counts.get(w, 0)
        return max(a - d[min(a, 3) - 1], 0) / total * (a > 0) + gamma * lower

    seq = [int(t) for t in seq]
    return np.array([math.log(prob(seq[i], seq[:i], order)) for i in range(1, len(seq))])


@pytest.mark.parametrize("order", [0, 1, 2, 4])
def test_matches_a_reference_implementation(order):
    rng = np.random.default_rng(order)
    seqs = random_sequences(rng)
    train, test = seqs[:5], seqs[5]
    model = MarkovModel(order).fit(train)
    np.testing.assert_allclose(model.log_probs(test, use_grammar=False), reference_log_probs(train, test, order),
                               rtol=1e-9, atol=1e-12)
    # also a model fitted to a higher order and evaluated at a lower one
    high = MarkovModel(order).fit(train, max_order=order + 3)
    np.testing.assert_allclose(high.log_probs(test, use_grammar=False), model.log_probs(test, use_grammar=False))


def test_distributions_are_normalised_over_the_allowed_set(chorales):
    model = MarkovModel(6).fit(chorales[2:])
    seq = chorales[0][:400]
    dists = model.distributions(seq)
    g = Grammar()
    g.apply(seq[0])
    for i, tok in enumerate(seq[1:]):
        mask = g.mask()
        assert dists[i].sum() == pytest.approx(1.0, abs=1e-9)
        assert (dists[i][~mask] == 0).all() and (dists[i][mask] > 0).all()
        g.apply(tok)
    np.testing.assert_allclose(np.log(dists[np.arange(len(seq) - 1), seq[1:]]), model.log_probs(seq), rtol=1e-9)
    free = model.distributions(seq, use_grammar=False)  # unmasked: a distribution over all but BOS
    np.testing.assert_allclose(free.sum(axis=1), 1.0, atol=1e-9)
    assert (free[:, BOS] == 0).all() and (np.delete(free, BOS, axis=1) > 0).all()


def test_next_distribution_agrees_with_the_sequence_scores(chorales):
    model = MarkovModel(5).fit(chorales[2:])
    seq = chorales[0][:60]
    dists = model.distributions(seq)
    g = Grammar()
    for i in range(1, len(seq)):
        g.apply(seq[i - 1])
        np.testing.assert_allclose(model.next_distribution(seq[:i], g), dists[i - 1], rtol=1e-9, atol=1e-15)


def test_higher_order_beats_order_one_on_a_repeating_sequence():
    # after OFF62 comes ON64 or ON60: only a context longer than one token knows which
    train = melody([60, 62, 64, 62] * 30)
    test = melody([60, 62, 64, 62] * 10)
    nll = {o: MarkovModel(o).fit([train]).evaluate([test])["nll_per_event"] for o in (1, 8)}
    assert nll[8] < 0.5 * nll[1]
    assert MarkovModel(8).fit([train]).evaluate([test])["accuracy"] > 0.95


def test_unseen_tokens_get_nonzero_probability():
    train = melody([60, 62, 64, 62] * 10)
    test = transpose_tokens(train, 7)  # every pitch unseen
    lp = MarkovModel(4).fit([train]).log_probs(test)
    assert np.isfinite(lp).all() and len(lp) == len(test) - 1


def test_real_chorales(chorales):
    train, test = chorales[3:], chorales[:3]
    stats = {o: MarkovModel(o).fit(train).evaluate(test) for o in (0, 4)}
    for s in stats.values():
        assert np.isfinite(s["nll_per_event"]) and s["events"] == sum(len(t) - 1 for t in test)
    assert stats[4]["nll_per_event"] < 0.6 * math.log(VOCAB_SIZE)
    assert stats[4]["nll_per_event"] < stats[0]["nll_per_event"]
    assert stats[4]["accuracy"] > 0.3  # chance is about 1 in 100 allowed tokens


def test_choose_order_and_save_load(chorales, tmp_path):
    model = MarkovModel()
    res = model.choose_order(chorales[4:], chorales[2:4], orders=(1, 2, 4, 6), discount_scales=(0.9, 1.0))
    assert res["order"] in (2, 4, 6) and model.order == res["order"]
    assert res["nll_per_event"] == min(s["nll_per_event"] for s in res["table"].values())
    assert res["nll_per_event"] == pytest.approx(model.evaluate(chorales[2:4])["nll_per_event"])
    path = tmp_path / "markov.npz"
    model.save(path)
    loaded = MarkovModel.load(path)
    assert (loaded.order, loaded.discount_scale) == (model.order, model.discount_scale)
    np.testing.assert_allclose(loaded.log_probs(chorales[0]), model.log_probs(chorales[0]))
