"""Held-out likelihoods under the grammar mask: what `eval` reports and what training validates on."""
from __future__ import annotations

import numpy as np
import torch

from antiphon.engine.ensemble import Member, Transposition, mixture_log_probs
from antiphon.engine.memory import MemoryConfig, memory_log_probs
from antiphon.engine.model import EventLSTM, pitch_context
from antiphon.engine.tokens import VOCAB_SIZE, Grammar


def grammar_masks(tokens: np.ndarray) -> np.ndarray:
    """masks[i] = the tokens allowed after tokens[:i+1]; shape (len-1, vocab). Depends only on the past."""
    g = Grammar()
    out = np.empty((len(tokens) - 1, VOCAB_SIZE), dtype=bool)
    for i, tok in enumerate(tokens[:-1]):
        g.apply(int(tok))
        out[i] = g.mask()
    return out


@torch.no_grad()
def stream_log_probs(model: EventLSTM, tokens: np.ndarray, positions: np.ndarray, device: str | torch.device = "cpu",
                     chunk: int = 4096, memory: MemoryConfig | None = None,
                     roles: np.ndarray | None = None, player: np.ndarray | None = None) -> torch.Tensor:
    """(len-1, vocab) log-probabilities of the token after each of tokens[:-1], before the grammar mask.
    The whole piece runs through one carried LSTM state; with a session memory, the model's distribution
    is mixed with it (as the realtime step does). `roles`: who plays each token (read by models with the
    role input; default nobody named); `player` (len, 128): what the player sounds (model.player_sounding)."""
    model.eval()
    x = torch.as_tensor(tokens[:-1].astype(np.int64), device=device)[None]
    pos = torch.as_tensor(positions[:-1].astype(np.int64), device=device)[None]
    who = None if roles is None else torch.as_tensor(np.asarray(roles)[:-1].astype(np.int64), device=device)[None]
    heard = None if player is None else torch.as_tensor(np.asarray(player)[:-1], device=device)[None]
    snd = rel = None
    if model.reads_pitches:
        snd, rel = (torch.from_numpy(a).to(device)[None] for a in pitch_context(tokens[:-1]))
    state = None
    logits, outputs = [], []
    for s in range(0, x.shape[1], chunk):
        part = slice(s, s + chunk)
        sn, rl = (None, None) if snd is None else (snd[:, part], rel[:, part])
        out, state = model.outputs(x[:, part], pos[:, part], state, sn, roles=None if who is None else who[:, part],
                                   player=None if heard is None else heard[:, part])
        logits.append(model.scores(out, x[:, part], sn, rl)[0].float())
        if memory is not None:
            outputs.append(out[0])
    logits = torch.cat(logits)
    if memory is None:
        return torch.log_softmax(logits, dim=-1)
    y = torch.as_tensor(tokens[1:].astype(np.int64), device=device)
    return memory_log_probs(logits, torch.cat(outputs), y, memory)


def masked_scores(log_probs: torch.Tensor, tokens: np.ndarray, masks: np.ndarray | None = None
                  ) -> tuple[np.ndarray, np.ndarray]:
    """Log-probability of each of tokens[1:] under the grammar mask, and whether the masked argmax was it."""
    if masks is None:
        masks = grammar_masks(tokens)
    y = torch.as_tensor(tokens[1:].astype(np.int64), device=log_probs.device)
    m = torch.as_tensor(masks, device=log_probs.device)
    lp = torch.log_softmax(log_probs.masked_fill(~m, float("-inf")), dim=-1)
    return lp.gather(1, y[:, None])[:, 0].cpu().numpy(), (lp.argmax(dim=-1) == y).cpu().numpy()


def token_log_probs(model: EventLSTM, tokens: np.ndarray, positions: np.ndarray, masks: np.ndarray | None = None,
                    device: str | torch.device = "cpu", chunk: int = 4096,
                    memory: MemoryConfig | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Natural-log probability of each of tokens[1:] given its past, masked by the grammar; and whether
    the masked argmax was right."""
    return masked_scores(stream_log_probs(model, tokens, positions, device, chunk, memory), tokens, masks)


def member_log_probs(member: Member, tokens: np.ndarray, positions: np.ndarray,
                     device: str | torch.device = "cpu", memory: bool = True) -> torch.Tensor:
    """stream_log_probs of one ensemble member, through its transposition if it has one."""
    mem = member.memory if memory else None
    if not member.shift:
        return stream_log_probs(member.model, tokens, positions, device, memory=mem)
    view = Transposition(member.shift)
    return view.outcomes(stream_log_probs(member.model, view.inputs[tokens], positions, device, memory=mem))


def style_token_log_probs(style, tokens: np.ndarray, positions: np.ndarray, device: str | torch.device = "cpu",
                          memory: bool = True) -> tuple[np.ndarray, np.ndarray]:
    """token_log_probs for a style: an ensemble's members mixed with their weights; memory=False scores
    the LSTMs alone."""
    members = style.members or [Member(style.model, style.memory, 1.0)]
    parts = [member_log_probs(m, tokens, positions, device, memory) for m in members]
    mixed = parts[0] if len(parts) == 1 else mixture_log_probs(parts, [m.weight for m in members],
                                                               style.mixture_temperature)
    return masked_scores(mixed, tokens)


def summarize(logps: list[np.ndarray], hits: list[np.ndarray]) -> dict:
    n = int(sum(len(x) for x in logps))
    if n == 0:
        return {"nll_per_event": float("nan"), "accuracy": float("nan"), "events": 0}
    return {
        "nll_per_event": float(-sum(x.sum() for x in logps) / n),
        "accuracy": float(sum(h.sum() for h in hits) / n),
        "events": n,
    }
