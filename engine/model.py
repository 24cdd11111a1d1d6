"""The stateful event LSTM: token + bar-position embeddings -> LSTM -> next-token logits.

`forward` runs whole batches for training; `step` runs one event for live use with the same weights.
engine/runtime.py holds the fast per-event step used on the realtime path.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass, fields

import torch
from torch import nn

from .tokens import BOS, MAX_SHIFT, N_PITCHES, N_POSITIONS, N_ROLES, NOTE_OFF, NOTE_ON, TIME_SHIFT, VOCAB_SIZE


@dataclass
class ModelConfig:
    vocab_size: int = VOCAB_SIZE
    n_positions: int = N_POSITIONS
    embed: int = 256
    hidden: int = 256
    layers: int = 2
    dropout: float = 0.1  # between LSTM layers and before the head
    embed_dropout: float = 0.0
    weight_drop: float = 0.0  # DropConnect on the recurrent (hidden-to-hidden) weights while training
    sounding_input: bool = False  # also read which pitches sound (known from the past tokens)
    interval_head: bool = False  # note scores also depend on the interval to each sounding/just-released pitch
    interval_roles: bool = False  # ... and to the lowest sounding pitch and the note-on just read
    shift_input: bool = False  # while training, also read how far the piece was transposed (0 when played)
    role_input: bool = False  # also read who plays each token: nobody named, the player, the band (tokens.ROLE_*)
    player_input: bool = False  # also read the pitches the player sounds at the token's tick (see player_sounding)

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
        if cfg.interval_roles and not cfg.interval_head:
            raise ValueError("model config interval_roles needs interval_head")
        return cfg


PRESETS = {
    "tiny": ModelConfig(embed=64, hidden=128, layers=1, dropout=0.0),
    "small": ModelConfig(embed=192, hidden=256, layers=2, dropout=0.1),
    "medium": ModelConfig(embed=256, hidden=512, layers=2, dropout=0.2),
    "large": ModelConfig(embed=384, hidden=768, layers=3, dropout=0.3),
}


INTERVAL_REACH = 24  # semitones either way that the interval head scores
SHIFT_REACH = 12  # transpositions (semitones either way) the shift input tells apart
INTERVAL_SPAN = 2 * INTERVAL_REACH + 1


def released_after(tokens):
    """(T,) tokens -> (T, 128) bool: the pitches released (note-off) at the current tick, after each
    token; a time shift starts a new tick with nothing released."""
    import numpy as np

    tokens = np.asarray(tokens)
    off = (tokens >= NOTE_OFF) & (tokens < TIME_SHIFT)
    counts = np.zeros((len(tokens) + 1, N_PITCHES), dtype=np.int32)
    idx = np.nonzero(off)[0]
    counts[idx + 1, tokens[idx] - NOTE_OFF] = 1
    counts = np.cumsum(counts, axis=0)
    new_tick = (tokens >= TIME_SHIFT) & (tokens < TIME_SHIFT + MAX_SHIFT) | (tokens == BOS)
    start = np.maximum.accumulate(np.where(new_tick, np.arange(len(tokens)) + 1, 0))
    return counts[1:] - counts[start] > 0


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


def player_sounding(tokens, roles):
    """(T,) tokens and who plays them (tokens.ROLE_*) -> (T, 128) bool: after each token, the pitches the player
    sounds at the end of the tick the stream has reached, that tick's player events included, those that come
    later in its canonical order too. The accompaniment hears the player's note before it chooses its own of
    the same tick, though a lower note of its own comes first in the stream."""
    import numpy as np

    from .tokens import ROLE_PLAYER

    tokens, roles = np.asarray(tokens), np.asarray(roles)
    mine = roles == ROLE_PLAYER
    played = np.where(mine, tokens, -1)
    sounding = sounding_after(played)  # tokens outside note-on/off (here: everyone else's) change nothing
    shift = (tokens >= TIME_SHIFT) & (tokens < TIME_SHIFT + MAX_SHIFT)
    ticks = np.cumsum(np.where(shift, tokens - TIME_SHIFT + 1, 0))
    last_of_tick = np.searchsorted(ticks, ticks, side="right") - 1
    return sounding[last_of_tick]


def pitch_context(tokens):
    """(..., T) tokens starting a piece -> (sounding, released), each (..., T, 128) bool."""
    import numpy as np

    tokens = np.asarray(tokens)
    flat = tokens.reshape(-1, tokens.shape[-1])
    released = np.stack([released_after(t) for t in flat]).reshape(tokens.shape + (N_PITCHES,))
    return sounding_after(tokens), released


def role_rows(tokens: torch.Tensor, sounding: torch.Tensor) -> list[torch.Tensor]:
    """Two more interval-head rows (..., T, 128): the lowest sounding pitch, and the token's pitch when
    it is a note-on (the voice just placed, in a tick's ascending order)."""
    sounding = sounding.to(torch.bool)
    lowest = nn.functional.one_hot(sounding.to(torch.uint8).argmax(-1), N_PITCHES) & sounding.any(-1, keepdim=True)
    is_on = (tokens >= NOTE_ON) & (tokens < NOTE_OFF)
    placed = nn.functional.one_hot((tokens - NOTE_ON).clamp(0, N_PITCHES - 1), N_PITCHES) & is_on[..., None]
    return [lowest.to(torch.bool), placed.to(torch.bool)]


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
        if config.shift_input:
            # augmentation that keeps the key: the model learns from every transposition what they share,
            # told which one it reads; music as played (and as scored) reads shift 0
            self.shift_emb = nn.Embedding(2 * SHIFT_REACH + 1, config.embed)
        if config.role_input:
            # ROLE_NONE adds nothing: a stream with nobody named reads as it would without the input
            self.role_emb = nn.Embedding(N_ROLES, config.embed, padding_idx=0)
        if config.player_input:
            self.player_proj = nn.Linear(N_PITCHES, config.embed, bias=False)
        if config.interval_head:
            # per step, a score for each interval (-REACH..REACH) from a candidate pitch to each sounding
            # and to each just-released pitch (with roles, also to the lowest sounding pitch and to the
            # note-on just read), one profile for note-ons and one for note-offs
            self.interval_proj = nn.Linear(config.hidden, 2 * self.interval_rows * INTERVAL_SPAN)

    @property
    def interval_rows(self) -> int:
        return 4 if self.config.interval_roles else 2

    @property
    def reads_pitches(self) -> bool:
        return self.config.sounding_input or self.config.interval_head

    def forward(self, tokens: torch.Tensor, positions: torch.Tensor,
                state: tuple[torch.Tensor, torch.Tensor] | None = None, sounding: torch.Tensor | None = None,
                released: torch.Tensor | None = None, shift: torch.Tensor | None = None,
                roles: torch.Tensor | None = None, player: torch.Tensor | None = None):
        """tokens, positions: (batch, time) -> logits (batch, time, vocab), new state.

        For models that read pitches (`reads_pitches`), `sounding` and `released` (batch, time, 128) say
        which pitches sound, and which were released at the current tick, after each token; left out,
        they are worked out from `tokens`, which must then start the piece. `shift` (batch,): how many
        semitones each row was transposed by augmentation (default 0; read with `shift_input`). `roles`
        (batch, time): who plays each token (tokens.ROLE_*; default ROLE_NONE; read with `role_input`).
        `player` (batch, time, 128): what the player sounds at each token's tick (player_sounding; default
        nothing; read with `player_input`)."""
        if self.reads_pitches and (sounding is None or released is None):
            sounding, released = pitch_context(tokens.cpu().numpy())
            sounding, released = torch.from_numpy(sounding).to(tokens.device), torch.from_numpy(released).to(tokens.device)
        y, state = self.outputs(tokens, positions, state, sounding, shift, roles, player)
        return self.scores(y, tokens, sounding, released), state

    def outputs(self, tokens: torch.Tensor, positions: torch.Tensor, state=None, sounding: torch.Tensor | None = None,
                shift: torch.Tensor | None = None, roles: torch.Tensor | None = None,
                player: torch.Tensor | None = None):
        """The last LSTM layer's output at each step (batch, time, hidden), and the new state."""
        x = self.tok_emb(tokens) + self.pos_emb(positions)
        if self.config.role_input and roles is not None:
            x = x + self.role_emb(roles)
        if self.config.player_input and player is not None:
            x = x + self.player_proj(player.to(x.dtype))
        if self.config.sounding_input:
            x = x + self.sound_proj(sounding.to(x.dtype))
        if self.config.shift_input:
            if shift is None:
                shift = torch.zeros(tokens.shape[0], dtype=torch.long, device=tokens.device)
            x = x + self.shift_emb(shift.clamp(-SHIFT_REACH, SHIFT_REACH) + SHIFT_REACH)[:, None, :]
        x = self.emb_drop(x)
        if self.training and self.config.weight_drop:
            # one dropped copy of each recurrent matrix per batch, the same at every time step
            weights = {name: nn.functional.dropout(w, self.config.weight_drop) if name.startswith("weight_hh") else w
                       for name, w in self.lstm.named_parameters()}
            y, state = torch.func.functional_call(self.lstm, weights, (x, state))
        else:
            y, state = self.lstm(x, state)
        return self.drop(y), state

    def scores(self, y: torch.Tensor, tokens: torch.Tensor, sounding: torch.Tensor | None = None,
               released: torch.Tensor | None = None) -> torch.Tensor:
        """LSTM outputs -> next-token logits (batch, time, vocab)."""
        logits = self.head(y)
        if self.config.interval_head:
            rows = [sounding, released]
            if self.config.interval_roles:
                rows += role_rows(tokens, sounding)
            logits = logits + self.interval_scores(y, rows)
        return logits

    def interval_scores(self, y: torch.Tensor, rows: list[torch.Tensor]) -> torch.Tensor:
        """(batch, time, vocab) additions to the note-on and note-off logits: for each candidate pitch p,
        the sum over the pitches s marked in each context row (batch, time, 128) of that row's on/off
        profile[p - s]."""
        B, T, _ = y.shape
        K = len(rows)
        r = self.interval_proj(y).view(B, T, 2, K, INTERVAL_SPAN)  # (on|off, row, interval)
        ctx = torch.stack(rows, dim=2).to(r.dtype)  # (B, T, K, 128)
        # one correlation per (step, context row) with that step's two profiles as kernels: a grouped
        # conv1d; kernel tap j meets pitch p + j - REACH, the interval p - s = REACH - j, hence the flip
        x = nn.functional.pad(ctx, (INTERVAL_REACH, INTERVAL_REACH)).reshape(1, B * T * K, -1)
        kernels = r.flip(-1).transpose(2, 3).reshape(B * T * K * 2, 1, INTERVAL_SPAN)
        notes = nn.functional.conv1d(x, kernels, groups=B * T * K).view(B, T, K, 2, N_PITCHES).sum(2)
        before = NOTE_ON
        after = self.config.vocab_size - NOTE_ON - 2 * N_PITCHES
        return nn.functional.pad(notes.reshape(B, T, 2 * N_PITCHES), (before, after))

    def initial_state(self, batch: int = 1):
        c = self.config
        p = self.head.weight
        z = torch.zeros(c.layers, batch, c.hidden, device=p.device, dtype=p.dtype)
        return z, z.clone()

    @torch.no_grad()
    def step(self, token: int, position: int, state):
        """One event, batch 1: the reference step (engine.runtime.StepRuntime is the fast one).
        Models that read pitches need the whole stream: use forward or the runtime."""
        if self.reads_pitches:
            raise ValueError("step() cannot know what sounds; use engine.runtime.StepRuntime")
        p = self.head.weight.device
        t = torch.tensor([[token]], device=p)
        pos = torch.tensor([[position]], device=p)
        logits, state = self.forward(t, pos, state)
        return logits[0, -1], state

    def num_parameters(self) -> int:
        return sum(p.numel() for p in self.parameters())
