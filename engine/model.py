"""The stateful event LSTM: token + bar-position embeddings -> LSTM -> next-token logits.

`forward` runs whole batches for training; `step` runs one event for live use with the same weights.
engine/runtime.py holds the fast per-event step used on the realtime path.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass, fields

import torch
from torch import nn

from .tokens import N_PITCHES, N_POSITIONS, NOTE_OFF, NOTE_ON, TIME_SHIFT, VOCAB_SIZE


@dataclass
class ModelConfig:
    vocab_size: int = VOCAB_SIZE
    n_positions: int = N_POSITIONS
    embed: int = 256
    hidden: int = 256
    layers: int = 2
    dropout: float = 0.1  # between LSTM layers and before the head
    embed_dropout: float = 0.0
    sounding_input: bool = False  # also read which pitches sound (known from the past tokens)

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> "ModelConfig":
        names = {f.name for f in fields(cls)}
        unknown = set(d) - names
        if unknown:
            raise ValueError(f"unknown model config keys: {sorted(unknown)}")
        cfg = cls(**d)
        for f in fields(cls):
            v = getattr(cfg, f.name)
            if f.type == "int" and not (type(v) is int and 1 <= v <= 16384):
                raise ValueError(f"model config {f.name} must be an integer in 1..16384, got {v!r}")
            if f.type == "float" and not (type(v) in (int, float) and 0.0 <= v < 1.0):
                raise ValueError(f"model config {f.name} must be a number in [0, 1), got {v!r}")
            if f.type == "bool" and type(v) is not bool:
                raise ValueError(f"model config {f.name} must be true or false, got {v!r}")
        return cfg


PRESETS = {
    "tiny": ModelConfig(embed=64, hidden=128, layers=1, dropout=0.0),
    "small": ModelConfig(embed=192, hidden=256, layers=2, dropout=0.1),
    "medium": ModelConfig(embed=256, hidden=512, layers=2, dropout=0.2),
    "large": ModelConfig(embed=384, hidden=768, layers=3, dropout=0.3),
}


def sounding_after(tokens, initial=None):
    """(..., T) tokens -> (..., T, 128) bool: the pitches sounding after each token. `initial` (..., 128):
    what sounded before the first token (default nothing)."""
    import numpy as np

    tokens = np.asarray(tokens)
    delta = np.zeros(tokens.shape + (N_PITCHES,), dtype=np.int8)
    on = (tokens >= NOTE_ON) & (tokens < NOTE_OFF)
    off = (tokens >= NOTE_OFF) & (tokens < TIME_SHIFT)
    idx = np.nonzero(on)
    delta[idx + (tokens[idx] - NOTE_ON,)] = 1
    idx = np.nonzero(off)
    delta[idx + (tokens[idx] - NOTE_OFF,)] = -1
    counts = np.cumsum(delta, axis=-2, dtype=np.int8)
    if initial is not None:
        counts += np.asarray(initial, dtype=np.int8)[..., None, :]
    return counts > 0


class EventLSTM(nn.Module):
    def __init__(self, config: ModelConfig):
        super().__init__()
        self.config = config
        self.tok_emb = nn.Embedding(config.vocab_size, config.embed)
        self.pos_emb = nn.Embedding(config.n_positions, config.embed)
        self.emb_drop = nn.Dropout(config.embed_dropout)
        self.lstm = nn.LSTM(config.embed, config.hidden, config.layers, batch_first=True,
                            dropout=config.dropout if config.layers > 1 else 0.0)
        self.drop = nn.Dropout(config.dropout)
        self.head = nn.Linear(config.hidden, config.vocab_size)
        if config.sounding_input:
            self.sound_proj = nn.Linear(N_PITCHES, config.embed, bias=False)

    def forward(self, tokens: torch.Tensor, positions: torch.Tensor,
                state: tuple[torch.Tensor, torch.Tensor] | None = None, sounding: torch.Tensor | None = None):
        """tokens, positions: (batch, time) -> logits (batch, time, vocab), new state.

        With `sounding_input`, `sounding` (batch, time, 128) says which pitches sound after each token;
        left out, it is worked out from `tokens`, which must then start the piece (nothing sounding)."""
        x = self.tok_emb(tokens) + self.pos_emb(positions)
        if self.config.sounding_input:
            if sounding is None:
                sounding = torch.from_numpy(sounding_after(tokens.cpu().numpy())).to(tokens.device)
            x = x + self.sound_proj(sounding.to(x.dtype))
        x = self.emb_drop(x)
        y, state = self.lstm(x, state)
        return self.head(self.drop(y)), state

    def initial_state(self, batch: int = 1):
        c = self.config
        p = self.head.weight
        z = torch.zeros(c.layers, batch, c.hidden, device=p.device, dtype=p.dtype)
        return z, z.clone()

    @torch.no_grad()
    def step(self, token: int, position: int, state):
        """One event, batch 1: the reference step (engine.runtime.StepRuntime is the fast one).
        Models with `sounding_input` need the whole stream: use forward or the runtime."""
        if self.config.sounding_input:
            raise ValueError("step() cannot know what sounds; use engine.runtime.StepRuntime")
        p = self.head.weight.device
        t = torch.tensor([[token]], device=p)
        pos = torch.tensor([[position]], device=p)
        logits, state = self.forward(t, pos, state)
        return logits[0, -1], state

    def num_parameters(self) -> int:
        return sum(p.numel() for p in self.parameters())
