"""Fitting an ensemble on held-out data: each member's scores of the valid split, forward selection of
the members that mix best, and the mixture's own temperature (`antiphon ensemble`)."""
from __future__ import annotations


MIN_VIEW_WEIGHT = 1e-3


def member_target_log_probs(members, split, device) -> list:
    """Each member's log-probability (under the grammar mask) of every token that came in `split`, one
    array per member."""
    import numpy as np

    from .scoring import grammar_masks, masked_scores, member_log_probs

    masks = [grammar_masks(tokens) for tokens, _ in split.pieces]
    per_member = []
    for m in members:
        rows = [masked_scores(member_log_probs(m, tokens, positions, device), tokens, mask)[0]
                for (tokens, positions), mask in zip(split.pieces, masks)]
        per_member.append(np.concatenate(rows))
    return per_member


def mixture_nll(per_member: list) -> float:
    import numpy as np

    from antiphon.engine.ensemble import fit_weights

    lp = np.stack(per_member).astype(np.float64)
    w = np.asarray(fit_weights(list(lp)))
    return float(-np.logaddexp.reduce(lp + np.log(np.maximum(w, 1e-300))[:, None], axis=0).sum())


def choose_members(members, per_member: list, limit: int) -> list[int]:
    """Forward selection: the member whose addition gives the best EM mixture on valid, one at a time,
    up to `limit`; at least one unshifted view (it gives every pitch of the keyboard a probability)."""
    chosen: list[int] = []
    while len(chosen) < min(limit, len(members)):
        candidates = [i for i in range(len(members)) if i not in chosen]
        if len(chosen) == limit - 1 and all(members[i].shift for i in chosen):
            candidates = [i for i in candidates if members[i].shift == 0]
        chosen.append(min(candidates, key=lambda i: mixture_nll([per_member[j] for j in chosen + [i]])))
    return sorted(chosen)


def fit_mixture_temperature(members, split, device) -> dict:
    """The temperature of the weighted mixture that scores best on the valid split (1 unless it helps):
    members calibrated one by one make an underconfident mixture."""
    import torch

    from antiphon.engine.ensemble import mixture_log_probs
    from .memory_tune import masked_nll
    from .scoring import grammar_masks, member_log_probs

    temperatures = [round(0.7 + 0.01 * i, 2) for i in range(51)]
    totals = dict.fromkeys(temperatures, 0.0)
    n = 0
    for tokens, positions in split.pieces:
        mixed = mixture_log_probs([member_log_probs(m, tokens, positions, device) for m in members],
                                  [m.weight for m in members])
        y = torch.as_tensor(tokens[1:].astype("int64"), device=mixed.device)
        mask = torch.as_tensor(grammar_masks(tokens), device=mixed.device)
        for t in temperatures:
            totals[t] += masked_nll(mixed / t, y, mask)
        n += len(y)
    best = min(totals, key=totals.get)
    return {"temperature": best, "split_events": n, "nll_per_event": totals[best] / n,
            "nll_per_event_before": totals[1.0] / n, "temperatures": [temperatures[0], temperatures[-1]]}
