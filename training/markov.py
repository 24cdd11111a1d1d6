"""A variable-order Markov baseline over event tokens: interpolated modified Kneser-Ney.

This is the model family of Pachet's Continuator (a variable-order Markov model over the event stream),
with the smoothing that is standard for n-gram models because it is the best-performing one in
comparative studies (Chen & Goodman 1998): *interpolated modified Kneser-Ney* (KenLM's variant).

Why KN rather than PPM: both interpolate/escape from long to short contexts, but KN (a) gives the
lower orders *continuation* counts (in how many distinct contexts a continuation occurs), which is the
right statistic for a distribution that is only consulted when the longer context is rare; (b) has
closed-form discounts (three per order, from count-of-counts) so nothing but the order needs tuning;
(c) is always interpolated, so every distribution is a proper mixture down to the uniform one and
every token of the vocabulary gets nonzero probability. PPM-C/D escape estimates are cruder (one
escape rule for all orders) and usually lose a few percent of log-likelihood to it.

Conventions
-----------
* ``order`` is the Markov order: the number of previous tokens in the longest context (order 0 is
  the unigram model). Context length k is called "level k".
* Sequences start with BOS; BOS is never predicted. At position i only i previous tokens exist, so
  contexts at a sequence's start are shorter (they reach back to the BOS, which marks the start:
  this is equivalent to padding with BOS). KenLM's rule applies to them: an n-gram whose context is
  sequence-initial cannot be extended to the left, so its adjusted count is its raw count.
* Adjusted counts: at the top level raw counts c(h w); below it the continuation count
  N1+(. h w) (number of distinct left extensions) plus the count of sequence-initial occurrences.
* p_k(w | h) = max(a(h w) - D_k(a), 0) / a(h) + gamma(h) p_{k-1}(w | suffix h),
  gamma(h) = (D_k1 N1(h) + D_k2 N2(h) + D_k3 N3+(h)) / a(h); a context never seen at level k leaves
  p_{k-1} unchanged; level -1 is the uniform distribution over the non-BOS tokens.
  D_kj = j - (j + 1) Y n_{j+1} / n_j, Y = n1 / (n1 + 2 n2) (Chen & Goodman), from the count-of-counts
  of level k's adjusted counts, times an optional ``discount_scale`` tuned on validation data.
* With ``use_grammar`` the distribution at each position is restricted to ``Grammar.mask()`` and
  renormalised, exactly as the LSTM's is, so the per-event NLLs are comparable.

Storage: per level, the sorted unique context keys (parent context id * V + oldest token: contexts
form a suffix tree, extended to the left) and the sorted unique n-gram keys (context id * V + token,
so each context's continuations are one contiguous sparse slice) with raw and continuation counts.
Everything is built and looked up with vectorised numpy (np.unique / np.searchsorted), and the dense
interpolated distributions are built a chunk of positions at a time (a matrix per chunk, from the
lowest level up), then masked and renormalised.
"""
from __future__ import annotations

import json
import math
from typing import Iterable, Sequence

import numpy as np

from antiphon.engine.tokens import BOS, VOCAB_SIZE, Grammar

_CHUNK = 2048  # positions per dense block when scoring


def _chen_goodman(counts: np.ndarray, scale: float = 1.0) -> np.ndarray:
    """The modified-KN discounts (D1, D2, D3+) from the count-of-counts of `counts`."""
    n = np.bincount(np.minimum(counts, 5), minlength=6)[1:5].astype(float)  # n1..n4
    d = np.array([0.5, 1.0, 1.5])
    if n[0] > 0 and n[1] > 0:
        y = n[0] / (n[0] + 2 * n[1])
        for j in range(3):  # D_j = j - (j+1) Y n_{j+1} / n_j
            if n[j] > 0:
                d[j] = (j + 1) - (j + 2) * y * n[j + 1] / n[j]
    d = d * scale
    lo = np.array([0.05, 0.1, 0.15])
    hi = np.array([0.95, 1.9, 2.85])
    return np.clip(np.nan_to_num(d, nan=0.5), lo, hi)


def _flatten(sequences: Iterable[np.ndarray]) -> tuple[np.ndarray, np.ndarray, list[int]]:
    """Concatenated tokens, each token's position within its sequence, and the sequence lengths."""
    seqs = [np.asarray(s, dtype=np.int64).ravel() for s in sequences]
    seqs = [s for s in seqs if len(s)]
    if not seqs:
        return np.zeros(0, np.int64), np.zeros(0, np.int64), []
    lengths = [len(s) for s in seqs]
    toks = np.concatenate(seqs)
    starts = np.repeat(np.cumsum(lengths) - lengths, lengths)
    pos = np.arange(len(toks)) - starts
    return toks, pos, lengths


class _Level:
    """The n-grams with contexts of one length k."""

    def __init__(self, ctx_keys: np.ndarray, ng_keys: np.ndarray, raw: np.ndarray, vocab: int):
        self.ctx_keys = ctx_keys  # sorted, unique: parent id * V + oldest token (level 0: [0])
        self.ng_keys = ng_keys  # sorted, unique: context id * V + token
        self.raw = raw
        self.cont: np.ndarray | None = None  # continuation (adjusted) counts, below the top level
        self.init: np.ndarray | None = None  # occurrences whose context is sequence-initial
        self.ctx_of = ng_keys // vocab
        self.w = (ng_keys % vocab).astype(np.int64)
        self.ptr = np.searchsorted(ng_keys, np.arange(len(ctx_keys) + 1, dtype=np.int64) * vocab)
        self._prepared: dict = {}

    def prepared(self, kind: str, scale: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(discounted probability mass per n-gram, gamma per context, discounts) for raw/cont counts."""
        key = (kind, float(scale))
        if key not in self._prepared:
            a = (self.raw if kind == "raw" else self.cont).astype(np.float64)
            d = _chen_goodman(a.astype(np.int64), scale)
            da = d[np.minimum(a.astype(np.int64), 3) - 1]
            total = np.bincount(self.ctx_of, weights=a, minlength=len(self.ctx_keys))
            val = np.maximum(a - da, 0.0) / total[self.ctx_of]
            gamma = np.bincount(self.ctx_of, weights=np.minimum(da, a), minlength=len(self.ctx_keys)) / total
            self._prepared[key] = (val, gamma, d)
        return self._prepared[key]

    def apply(self, P: np.ndarray, cids: np.ndarray, kind: str, scale: float) -> None:
        """In place: rows whose level-k context is seen become gamma * row + discounted counts."""
        rows = np.nonzero(cids >= 0)[0]
        if not len(rows):
            return
        c = cids[rows]
        val, gamma, _ = self.prepared(kind, scale)
        start = self.ptr[c]
        lens = self.ptr[c + 1] - start
        n = int(lens.sum())
        offs = np.arange(n) - np.repeat(np.cumsum(lens) - lens, lens) + np.repeat(start, lens)
        P[rows] *= gamma[c][:, None]
        P[np.repeat(rows, lens), self.w[offs]] += val[offs]


class MarkovModel:
    """Variable-order Markov model over token ids with interpolated modified Kneser-Ney smoothing.

    >>> m = MarkovModel(order=8).fit(train_sequences)
    >>> m.evaluate(test_sequences)   # {"nll_per_event", "accuracy", "events"}
    >>> m.choose_order(train, valid, orders=range(1, 13))   # refits up to max(orders), picks the best
    """

    def __init__(self, order: int = 8, discount_scale: float = 1.0, vocab_size: int = VOCAB_SIZE):
        if order < 0:
            raise ValueError("order must be >= 0")
        self.order = int(order)
        self.discount_scale = float(discount_scale)
        self.vocab_size = int(vocab_size)
        self.levels: list[_Level] = []
        self.max_order = -1  # highest order the fitted counts support
        self.uniform = np.full(self.vocab_size, 1.0 / (self.vocab_size - 1))
        self.uniform[BOS] = 0.0

    # ------------------------------------------------------------------ fitting
    def fit(self, sequences: Sequence[np.ndarray], max_order: int | None = None) -> "MarkovModel":
        """Counts every n-gram up to `max_order` (default: self.order) context tokens."""
        M = self.order if max_order is None else max(int(max_order), self.order)
        V = self.vocab_size
        toks, pos, _ = _flatten(sequences)
        if len(toks) and (toks.min() < 0 or toks.max() >= V):
            raise ValueError("token outside the vocabulary")
        tgt = np.nonzero(pos >= 1)[0]
        if not len(tgt):
            raise ValueError("no tokens to fit (sequences need at least BOS and one token)")
        tpos = pos[tgt]
        levels: list[_Level] = []
        cid = np.zeros(len(tgt), dtype=np.int64)  # level-0 context id of every target: the empty one
        ctx_keys = np.zeros(1, dtype=np.int64)
        for k in range(M + 1):
            if k > 0:
                m = tpos >= k
                key = cid[m] * V + toks[tgt[m] - k]
                ctx_keys, inv = np.unique(key, return_inverse=True)
                cid = np.full(len(tgt), -1, dtype=np.int64)
                cid[m] = inv.ravel()
            m = cid >= 0
            ng_keys, ng_inv, raw = np.unique(cid[m] * V + toks[tgt[m]], return_inverse=True, return_counts=True)
            lvl = _Level(ctx_keys, ng_keys, raw.astype(np.int64), V)
            lvl.init = np.bincount(ng_inv.ravel()[tpos[m] == k], minlength=len(ng_keys)).astype(np.int64)
            if k > 0:  # continuation counts of level k-1: distinct left extensions, + initial occurrences
                below = levels[k - 1]
                parent = ctx_keys[lvl.ctx_of] // V
                j = np.searchsorted(below.ng_keys, parent * V + lvl.w)
                below.cont = np.bincount(j, minlength=len(below.ng_keys)).astype(np.int64) + below.init
            levels.append(lvl)
        self.levels = levels
        self.max_order = M
        return self

    # ------------------------------------------------------------------ lookup
    def _context_ids(self, toks: np.ndarray, pos: np.ndarray, rows: np.ndarray, upto: int) -> list[np.ndarray]:
        """For each level 0..upto, the context id of every target index in `rows` (-1: none/unseen)."""
        V = self.vocab_size
        rpos = pos[rows]
        cids = [np.zeros(len(rows), dtype=np.int64)]
        for k in range(1, upto + 1):
            prev = cids[-1]
            cur = np.full(len(rows), -1, dtype=np.int64)
            m = (rpos >= k) & (prev >= 0)
            if m.any():
                keys = self.levels[k].ctx_keys
                key = prev[m] * V + toks[rows[m] - k]
                j = np.searchsorted(keys, key)
                jc = np.minimum(j, len(keys) - 1)
                found = keys[jc] == key
                cur[np.nonzero(m)[0][found]] = jc[found]
            cids.append(cur)
        return cids

    def _check_order(self, order: int) -> None:
        if not self.levels:
            raise RuntimeError("model not fitted")
        if order > self.max_order:
            raise ValueError(f"order {order} exceeds the fitted maximum {self.max_order}; refit")

    def _dense(self, cids: list[np.ndarray], order: int, scale: float) -> np.ndarray:
        """The unmasked distributions (rows x V) of the order-`order` model."""
        P = np.tile(self.uniform, (len(cids[0]), 1))
        for k in range(order + 1):
            self.levels[k].apply(P, cids[k], "raw" if k == order else "cont", scale)
        return P

    @staticmethod
    def _masks(toks: np.ndarray, pos: np.ndarray, rows: np.ndarray, use_grammar: bool) -> np.ndarray:
        masks = np.ones((len(rows), VOCAB_SIZE), dtype=bool)
        masks[:, BOS] = False
        if not use_grammar:
            return masks
        g = None
        r = 0
        row_set = rows
        for i in range(len(toks)):
            if pos[i] == 0:
                g = Grammar()
            elif r < len(row_set) and row_set[r] == i:
                masks[r] = g.mask()
                r += 1
            g.apply(int(toks[i]))
        return masks

    # ------------------------------------------------------------------ scoring
    def distributions(self, tokens: np.ndarray, use_grammar: bool = True) -> np.ndarray:
        """(len(tokens) - 1, V): the model's distribution over each token after the first (masked by
        the grammar and renormalised when `use_grammar`)."""
        self._check_order(self.order)
        toks, pos, _ = _flatten([tokens])
        rows = np.nonzero(pos >= 1)[0]
        P = self._dense(self._context_ids(toks, pos, rows, self.order), self.order, self.discount_scale)
        P *= self._masks(toks, pos, rows, use_grammar)
        return P / P.sum(axis=1, keepdims=True)

    def next_distribution(self, context: np.ndarray, grammar: Grammar | None = None) -> np.ndarray:
        """The distribution (V,) of the token after `context` (the history from BOS, or at least its
        last `order` tokens), restricted to
        `grammar.mask()` when a grammar (advanced past `context`) is given."""
        self._check_order(self.order)
        context = np.asarray(context, dtype=np.int64).ravel()
        window = context[-self.order:] if self.order else context[:0]
        toks = np.append(window, 1)  # a placeholder target: only the tokens before it are read
        pos = np.arange(len(toks))
        if len(context) > len(window) or (len(window) and window[0] != BOS):
            pos += self.order + 1  # a window from mid-sequence: no context in it is sequence-initial
        rows = np.array([len(toks) - 1])
        p = self._dense(self._context_ids(toks, pos, rows, self.order), self.order, self.discount_scale)[0]
        if grammar is not None:
            p = p * grammar.mask()
        return p / p.sum()

    def log_probs(self, tokens: np.ndarray, use_grammar: bool = True) -> np.ndarray:
        """Natural-log probability of each token after the first (len(tokens) - 1 values)."""
        out, _ = self._score([tokens], [self.order], use_grammar, self.discount_scale, keep=True)
        return out[self.order]

    def evaluate(self, sequences: Sequence[np.ndarray], use_grammar: bool = True) -> dict:
        """{"nll_per_event": mean NLL in nats over all scored tokens, "accuracy": argmax hit rate,
        "events": number of scored tokens}."""
        return self._score(sequences, [self.order], use_grammar, self.discount_scale)[1][self.order]

    def _score(self, sequences, orders: Sequence[int], use_grammar: bool, scale: float, keep: bool = False):
        """Scores every order in `orders` in one pass up the levels (the order-k model is level k with
        raw counts on top of levels < k with continuation counts). Returns ({order: log-probs} when
        `keep`, {order: evaluate-dict})."""
        orders = sorted(set(int(o) for o in orders))
        top = orders[-1]
        self._check_order(top)
        toks, pos, _ = _flatten(sequences)
        rows_all = np.nonzero(pos >= 1)[0]
        masks_all = self._masks(toks, pos, rows_all, use_grammar)
        nll = {o: 0.0 for o in orders}
        hits = {o: 0 for o in orders}
        lps: dict[int, list] = {o: [] for o in orders}
        for s in range(0, len(rows_all), _CHUNK):
            rows = rows_all[s:s + _CHUNK]
            mask = masks_all[s:s + _CHUNK]
            target = toks[rows]
            r = np.arange(len(rows))
            cids = self._context_ids(toks, pos, rows, top)
            P = np.tile(self.uniform, (len(rows), 1))
            for k in range(top + 1):
                if k in orders:
                    O = P.copy()
                    self.levels[k].apply(O, cids[k], "raw", scale)
                    O *= mask
                    lp = np.log(O[r, target]) - np.log(O.sum(axis=1))
                    nll[k] -= float(lp.sum())
                    hits[k] += int((O.argmax(axis=1) == target).sum())
                    if keep:
                        lps[k].append(lp)
                if k < top:
                    self.levels[k].apply(P, cids[k], "cont", scale)
        n = len(rows_all)
        stats = {o: {"nll_per_event": nll[o] / max(n, 1), "accuracy": hits[o] / max(n, 1), "events": int(n)}
                 for o in orders}
        out = {o: (np.concatenate(lps[o]) if lps[o] else np.zeros(0)) for o in orders} if keep else None
        return out, stats

    # ------------------------------------------------------------------ model selection
    def choose_order(self, train: Sequence[np.ndarray], valid: Sequence[np.ndarray],
                     orders: Iterable[int] = tuple(range(1, 13)),
                     discount_scales: Iterable[float] = (0.8, 0.9, 1.0, 1.1, 1.2),
                     use_grammar: bool = True) -> dict:
        """Fits on `train` up to max(orders), scores `valid` for every (order, discount scale) and keeps
        the best. Returns {"order", "discount_scale", "nll_per_event", "table": {(order, scale): stats}}.
        The model stays fitted on `train` (refit on train + valid if you like; the order carries over)."""
        orders = sorted(set(int(o) for o in orders))
        self.fit(train, max_order=orders[-1])
        table = {}
        for scale in discount_scales:
            _, stats = self._score(valid, orders, use_grammar, float(scale))
            for o in orders:
                table[(o, float(scale))] = stats[o]
        (best_o, best_s), best = min(table.items(), key=lambda kv: kv[1]["nll_per_event"])
        self.order, self.discount_scale = best_o, best_s
        return {"order": best_o, "discount_scale": best_s, "nll_per_event": best["nll_per_event"],
                "accuracy": best["accuracy"], "table": table}

    def discounts(self, order: int | None = None) -> list[list[float]]:
        """The (D1, D2, D3+) in use at each level of the order-`order` model."""
        order = self.order if order is None else order
        self._check_order(order)
        return [self.levels[k].prepared("raw" if k == order else "cont", self.discount_scale)[2].tolist()
                for k in range(order + 1)]

    # ------------------------------------------------------------------ persistence (npz, no pickle)
    def save(self, path) -> None:
        arrays = {"meta": np.frombuffer(json.dumps({
            "order": self.order, "discount_scale": self.discount_scale, "vocab_size": self.vocab_size,
            "max_order": self.max_order}).encode(), dtype=np.uint8)}
        for k, lvl in enumerate(self.levels):
            arrays[f"ctx{k}"] = lvl.ctx_keys
            arrays[f"ng{k}"] = lvl.ng_keys
            arrays[f"raw{k}"] = lvl.raw
            arrays[f"init{k}"] = lvl.init
            if lvl.cont is not None:
                arrays[f"cont{k}"] = lvl.cont
        np.savez_compressed(path, **arrays)

    @classmethod
    def load(cls, path) -> "MarkovModel":
        with np.load(path, allow_pickle=False) as z:
            meta = json.loads(z["meta"].tobytes().decode())
            m = cls(meta["order"], meta["discount_scale"], meta["vocab_size"])
            m.max_order = meta["max_order"]
            for k in range(m.max_order + 1):
                lvl = _Level(z[f"ctx{k}"], z[f"ng{k}"], z[f"raw{k}"], m.vocab_size)
                lvl.init = z[f"init{k}"]
                if f"cont{k}" in z:
                    lvl.cont = z[f"cont{k}"]
                m.levels.append(lvl)
        return m


def chance_nll() -> float:
    """log(V): the NLL of the uniform distribution over the whole vocabulary."""
    return math.log(VOCAB_SIZE)
