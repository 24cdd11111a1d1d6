"""Held-out likelihoods under the grammar mask: what `eval` reports and what training validates on."""
from __future__ import annotations

import numpy as np
import torch

from engine.model import EventLSTM, pitch_context
from engine.tokens import VOCAB_SIZE, Grammar


def grammar_masks(tokens: np.ndarray) -> np.ndarray:
    """masks[i] = the tokens allowed after tokens[:i+1]; shape (len-1, vocab). Depends only on the past."""
    g = Grammar()
    out = np.empty((len(tokens) - 1, VOCAB_SIZE), dtype=bool)
    for i, tok in enumerate(tokens[:-1]):
        g.apply(int(tok))
        out[i] = g.mask()
    return out


@torch.no_grad()
def token_log_probs(model: EventLSTM, tokens: np.ndarray, positions: np.ndarray, masks: np.ndarray | None = None,
                    device: str | torch.device = "cpu", chunk: int = 4096) -> tuple[np.ndarray, np.ndarray]:
    """Natural-log probability of each of tokens[1:] given its past, masked by the grammar; and whether
    the masked argmax was right. The whole piece runs through one carried LSTM state."""
    model.eval()
    if masks is None:
        masks = grammar_masks(tokens)
    x = torch.as_tensor(tokens[:-1].astype(np.int64), device=device)[None]
    pos = torch.as_tensor(positions[:-1].astype(np.int64), device=device)[None]
    y = torch.as_tensor(tokens[1:].astype(np.int64), device=device)
    m = torch.as_tensor(masks, device=device)
    snd = rel = None
    if model.reads_pitches:
        snd, rel = (torch.from_numpy(a).to(device)[None] for a in pitch_context(tokens[:-1]))
    state = None
    logps, hits = [], []
    for s in range(0, x.shape[1], chunk):
        logits, state = model(x[:, s:s + chunk], pos[:, s:s + chunk], state,
                              None if snd is None else snd[:, s:s + chunk], None if rel is None else rel[:, s:s + chunk])
        logits = logits[0].float().masked_fill(~m[s:s + chunk], float("-inf"))
        lp = torch.log_softmax(logits, dim=-1)
        target = y[s:s + chunk]
        logps.append(lp.gather(1, target[:, None])[:, 0])
        hits.append(lp.argmax(dim=-1) == target)
    return torch.cat(logps).cpu().numpy(), torch.cat(hits).cpu().numpy()


def summarize(logps: list[np.ndarray], hits: list[np.ndarray]) -> dict:
    n = int(sum(len(x) for x in logps))
    if n == 0:
        return {"nll_per_event": float("nan"), "accuracy": float("nan"), "events": 0}
    return {
        "nll_per_event": float(-sum(x.sum() for x in logps) / n),
        "accuracy": float(sum(h.sum() for h in hits) / n),
        "events": n,
    }
