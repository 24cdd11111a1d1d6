"""The training loop: AdamW, gradient clipping, transposition augmentation, per-epoch validation under
the grammar mask, atomic checkpoints with --resume, CUDA + AMP when present, DDP under torchrun.

Reads top to bottom: config, batches, one epoch, validation, checkpoint, the loop.
"""
from __future__ import annotations

import copy
import json
import math
import os
import random
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import torch
import torch.distributed as dist
import torch.nn.functional as F
from tqdm import tqdm

from antiphon.engine.model import EventLSTM, ModelConfig, pitch_context, player_sounding
from antiphon.engine.style import atomic_write_bytes, pack, save_style, unpack
from antiphon.engine.tokens import NOTE_OFF, NOTE_ON, VOCAB_SIZE, transpose_tokens

from .roles import assign_roles
from .scoring import grammar_masks, summarize, token_log_probs

Piece = tuple[np.ndarray, np.ndarray]  # (tokens, positions)


@dataclass
class TrainConfig:
    epochs: int = 20
    batch_size: int = 32
    seq_len: int = 512
    lr: float = 2e-3
    min_lr_ratio: float = 0.05
    weight_decay: float = 0.01
    clip: float = 1.0
    transpose: int = 6  # augment with random shifts in [-transpose, +transpose] semitones; 0 = off
    patience: int = 0  # stop after this many epochs without a better valid NLL; 0 = never
    seed: int = 0
    device: str = "auto"
    amp: bool = True
    threads: int = 0  # torch CPU threads; 0 = torch's default
    masked_loss: bool = False  # train on the grammar-masked softmax (what eval and sampling use)
    ema: float = 0.0  # validate and keep an exponential moving average of the weights with this decay; 0 = off
    minutes: float = 0.0  # stop after the epoch that passes this much training time; 0 = no limit


@dataclass
class History:
    epoch: int = 0
    best_valid: float = math.inf
    best_epoch: int = 0
    train_loss: list = field(default_factory=list)
    valid_nll: list = field(default_factory=list)
    valid_acc: list = field(default_factory=list)
    seconds: float = 0.0
    tokens_seen: int = 0


def pick_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name == "cuda" and not torch.cuda.is_available():
        raise ValueError("--device cuda asked for, but torch sees no CUDA device")
    return torch.device(name)


def chunks(pieces: list[Piece], seq_len: int, pitches: bool = False, masked: bool = False,
           voices: list | None = None) -> list[tuple]:
    """Pieces cut into windows of seq_len+1 tokens overlapping by one (inputs and targets); with
    `pitches`, each window also carries what sounds and what was just released after each of its input
    tokens, (n, 2, 128); with `masked`, the grammar mask for each of its targets; with `voices` (one
    entry per piece, see training.roles), each of its input tokens' voices."""
    out = []
    for i, (tokens, positions) in enumerate(pieces):
        snd = np.stack(pitch_context(tokens), axis=1) if pitches else None
        masks = grammar_masks(tokens) if masked else None
        piece_voices = voices[i] if voices is not None else None
        for s in range(0, max(1, len(tokens) - 1), seq_len):
            t, p = tokens[s:s + seq_len + 1], positions[s:s + seq_len + 1]
            if len(t) > 1:
                n = len(t) - 1
                out.append((t, p, None if snd is None else snd[s:s + n], None if masks is None else masks[s:s + n],
                            None if piece_voices is None else piece_voices[s:s + n]))
    return out


def _shift_mask(mask: np.ndarray, k: int) -> np.ndarray:
    """A grammar mask for tokens transposed by k: the note-on and note-off columns move with the pitch."""
    out = mask.copy()
    for base in (NOTE_ON, NOTE_OFF):
        out[:, base:base + 128] = _shift_pitches(mask[:, base:base + 128], k)
    return out


def _shift_pitches(snd: np.ndarray, k: int) -> np.ndarray:
    out = np.zeros_like(snd)
    if k > 0:
        out[..., k:] = snd[..., :-k]
    elif k < 0:
        out[..., :k] = snd[..., -k:]
    else:
        out[:] = snd
    return out


def batches(windows: list[tuple], cfg: TrainConfig, rng: random.Random, rank: int = 0, world: int = 1,
            player: bool = False):
    """Shuffled, length-bucketed, padded batches: inputs, positions, targets (-100 = padding), what
    sounds and what was just released after each input (None for models that do not read pitches),
    the grammar masks (None unless the loss is masked), each row's transposition in semitones, and who
    plays each input (training.roles; None when no window of the batch names anybody) and, with `player`,
    what the player sounds at each input's tick (model.player_sounding; None likewise)."""
    order = list(range(len(windows)))
    rng.shuffle(order)
    order = order[rank::world]
    buckets = [order[i:i + cfg.batch_size * 16] for i in range(0, len(order), cfg.batch_size * 16)]
    groups = []
    for b in buckets:
        b.sort(key=lambda i: len(windows[i][0]))
        groups += [b[i:i + cfg.batch_size] for i in range(0, len(b), cfg.batch_size)]
    rng.shuffle(groups)
    for group in groups:
        width = max(len(windows[i][0]) for i in group) - 1
        x = np.zeros((len(group), width), dtype=np.int64)
        pos = np.zeros((len(group), width), dtype=np.int64)
        y = np.full((len(group), width), -100, dtype=np.int64)
        with_sound = windows[group[0]][2] is not None
        with_mask = windows[group[0]][3] is not None
        snd = np.zeros((len(group), width, 2, 128), dtype=bool) if with_sound else None
        allowed = np.ones((len(group), width, VOCAB_SIZE), dtype=bool) if with_mask else None
        shifts = np.zeros(len(group), dtype=np.int64)
        roles = np.zeros((len(group), width), dtype=np.int64)
        heard = np.zeros((len(group), width, 128), dtype=bool) if player else None
        named = False
        for row, i in enumerate(group):
            tokens, positions, sounding, mask, voices = windows[i]
            assigned = assign_roles(voices, rng) if voices is not None else None
            if assigned is not None:
                roles[row, :len(assigned)] = assigned
                named = True
            k = rng.randint(-cfg.transpose, cfg.transpose) if cfg.transpose else 0
            shifted = transpose_tokens(tokens, k) if k else tokens
            if shifted is None:
                shifted, k = tokens, 0
            n = len(shifted) - 1
            shifts[row] = k
            x[row, :n] = shifted[:-1]
            pos[row, :n] = positions[:-1]
            y[row, :n] = shifted[1:]
            if with_sound:
                snd[row, :n] = _shift_pitches(sounding, k)
            if with_mask:
                allowed[row, :n] = _shift_mask(mask, k) if k else mask
            if heard is not None and assigned is not None:
                heard[row, :n] = player_sounding(shifted[:-1], assigned)
        yield (torch.from_numpy(x), torch.from_numpy(pos), torch.from_numpy(y),
               None if snd is None else torch.from_numpy(snd), None if allowed is None else torch.from_numpy(allowed),
               torch.from_numpy(shifts), torch.from_numpy(roles) if named else None,
               torch.from_numpy(heard) if named and heard is not None else None)


def validate(model: EventLSTM, pieces: list[Piece], masks: list[np.ndarray], device) -> dict:
    logps, hits = [], []
    for (tokens, positions), m in zip(pieces, masks):
        lp, hit = token_log_probs(model, tokens, positions, m, device)
        logps.append(lp)
        hits.append(hit)
    return summarize(logps, hits)


def save_checkpoint(path: Path, model: EventLSTM, opt: torch.optim.Optimizer, hist: History,
                    cfg: TrainConfig, extra: dict, ema: EventLSTM | None = None) -> None:
    """Model, optimizer moments, the weights' moving average and history in one safetensors file (no
    pickle), written atomically."""
    tensors = {f"model.{k}": v for k, v in model.state_dict().items()}
    if ema is not None:
        tensors.update({f"ema.{k}": v for k, v in ema.state_dict().items()})
    params = [p for group in opt.param_groups for p in group["params"]]
    steps = {}
    for i, p in enumerate(params):
        st = opt.state.get(p, {})
        for key in ("exp_avg", "exp_avg_sq"):
            if key in st:
                tensors[f"opt.{i}.{key}"] = st[key]
        if "step" in st:
            steps[i] = float(st["step"])
    meta = {"kind": "checkpoint", "history": asdict(hist), "train_config": asdict(cfg),
            "model_config": model.config.to_dict(), "steps": steps, "lr": opt.param_groups[0]["lr"], **extra}
    atomic_write_bytes(path, pack(tensors, meta))


def load_checkpoint(path: Path, model: EventLSTM, opt: torch.optim.Optimizer,
                    ema: EventLSTM | None = None) -> tuple[History, dict]:
    """Checks the whole checkpoint before touching `model`, `opt` or `ema`: a damaged one is reported
    (ValueError), never half loaded. A checkpoint without moving average starts `ema` from the weights."""
    tensors, meta = unpack(path.read_bytes(), str(path))
    if meta.get("kind") != "checkpoint":
        raise ValueError(f"{path}: not a training checkpoint")
    if meta.get("model_config") != model.config.to_dict():
        raise ValueError(f"{path}: checkpoint was made for another model config; start without --resume")
    try:
        hist = History(**meta["history"])
        if type(hist.epoch) is not int or hist.epoch < 0 or not all(
                isinstance(getattr(hist, f), list) for f in ("train_loss", "valid_nll", "valid_acc")):
            raise ValueError("history of the wrong types")
        weights = {k[6:]: v for k, v in tensors.items() if k.startswith("model.")}
        expected = model.state_dict()
        if set(weights) != set(expected) or any(weights[k].shape != v.shape for k, v in expected.items()):
            raise ValueError("model tensors missing or of the wrong shape")
        averaged = {k[4:]: v for k, v in tensors.items() if k.startswith("ema.")} or dict(weights)
        if set(averaged) != set(expected) or any(averaged[k].shape != v.shape for k, v in expected.items()):
            raise ValueError("moving-average tensors missing or of the wrong shape")
        params = [p for group in opt.param_groups for p in group["params"]]
        state = {}
        for i, p in enumerate(params):
            if f"opt.{i}.exp_avg" in tensors:
                avg, sq = tensors[f"opt.{i}.exp_avg"], tensors[f"opt.{i}.exp_avg_sq"]
                if avg.shape != p.shape or sq.shape != p.shape:
                    raise ValueError(f"optimizer state {i} of the wrong shape")
                state[p] = {"exp_avg": avg.to(p.device), "exp_avg_sq": sq.to(p.device),
                            "step": torch.tensor(float(meta["steps"][str(i)]))}
    except (KeyError, TypeError, ValueError, AttributeError) as exc:
        raise ValueError(f"{path}: damaged checkpoint ({type(exc).__name__}: {exc}); nothing was loaded. "
                         f"Start without --resume, or restore the file") from None
    model.load_state_dict(weights)
    if ema is not None:
        ema.load_state_dict(averaged)
    opt.state.update(state)
    return hist, meta


def plot_losses(hist: History, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 3.5), dpi=100)
    epochs = range(1, len(hist.train_loss) + 1)
    ax.plot(epochs, hist.train_loss, label="train loss (unmasked)")
    ax.plot(epochs, hist.valid_nll, label="valid NLL per event (masked)")
    ax.set_xlabel("epoch")
    ax.set_ylabel("nats per event")
    ax.legend()
    ax.grid(alpha=0.3)
    fig.tight_layout()
    tmp = path.with_suffix(".tmp.png")
    fig.savefig(tmp)
    plt.close(fig)
    os.replace(tmp, path)


def train(train_pieces: list[Piece], valid_pieces: list[Piece], model_cfg: ModelConfig, cfg: TrainConfig,
          out: Path, meta: dict, resume: bool = False, log=print, init: dict | None = None,
          train_voices: list | None = None) -> History:
    """Trains and writes: `out` (the style, best valid epoch), out.ckpt (last epoch), out.loss.png.
    `init`: a state dict to start from (fine-tuning; a model that adds the role input starts it at
    nothing); --resume takes precedence over it. `train_voices`: each train piece's token voices (for
    models with `role_input`; training.roles)."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    rank = int(os.environ.get("RANK", "0"))
    device = pick_device(cfg.device)
    if world > 1 and not dist.is_initialized():
        dist.init_process_group("nccl" if device.type == "cuda" else "gloo")
        if device.type == "cuda":
            device = torch.device("cuda", int(os.environ.get("LOCAL_RANK", "0")))
    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    torch.manual_seed(cfg.seed)
    out = Path(out)
    ckpt = out.with_name(out.name + ".ckpt")
    model = EventLSTM(model_cfg).to(device)
    if init is not None:  # fine-tuning: start from another style's weights
        missing, unexpected = model.load_state_dict(init, strict=False)
        if unexpected or set(missing) - {"role_emb.weight", "player_proj.weight"}:
            raise ValueError(f"--init: the parent style's weights do not fit this model "
                             f"(missing {sorted(missing)}, unexpected {sorted(unexpected)})")
    opt = torch.optim.AdamW(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    ema = copy.deepcopy(model).requires_grad_(False) if cfg.ema else None
    hist = History()
    if resume and ckpt.exists():
        hist, _ = load_checkpoint(ckpt, model, opt, ema)
        log(f"resumed from {ckpt} after epoch {hist.epoch} (best valid {hist.best_valid:.4f} at {hist.best_epoch})")
    elif resume:
        log(f"no checkpoint at {ckpt}: starting fresh")
    if init is not None and hist.epoch == 0 and valid_pieces and rank == 0:
        # fine-tuning: the parent itself is the score to beat (epoch 0), kept when no epoch beats it on valid
        v = validate(model, valid_pieces, [grammar_masks(t) for t, _ in valid_pieces], device)
        hist.best_valid = v["nll_per_event"]
        save_style(out, model, dict(meta, epoch=0, valid=v, history=asdict(hist), train_config=asdict(cfg),
                                    parameters=model.num_parameters()))
        log(json.dumps({"epoch": 0, "valid_nll": round(v["nll_per_event"], 4), "valid_acc": round(v["accuracy"], 4),
                        "parent": True}))
    net = torch.nn.parallel.DistributedDataParallel(model) if world > 1 else model
    windows = chunks(train_pieces, cfg.seq_len, model.reads_pitches, cfg.masked_loss,
                     train_voices if model_cfg.role_input else None)
    valid_masks = [grammar_masks(t) for t, _ in valid_pieces] if rank == 0 else []
    steps_per_epoch = max(1, math.ceil(len(windows) / world / cfg.batch_size))
    total_steps = steps_per_epoch * cfg.epochs
    use_amp = cfg.amp and device.type == "cuda"
    meta = dict(meta, train_config=asdict(cfg), parameters=model.num_parameters())

    while hist.epoch < cfg.epochs:
        epoch = hist.epoch + 1
        net.train()
        rng = random.Random(cfg.seed * 1000 + epoch)
        t0 = time.time()
        loss_sum = tokens_sum = 0.0
        bar = tqdm(batches(windows, cfg, rng, rank, world, model_cfg.player_input), total=steps_per_epoch,
                   disable=rank != 0,
                   desc=f"epoch {epoch}/{cfg.epochs}", unit="batch", leave=False)
        for i, (x, pos, y, snd, allowed, shift, roles, heard) in enumerate(bar):
            step = (epoch - 1) * steps_per_epoch + i
            lr = cfg.lr * (cfg.min_lr_ratio + (1 - cfg.min_lr_ratio) * 0.5 * (1 + math.cos(math.pi * step / total_steps)))
            for g in opt.param_groups:
                g["lr"] = lr
            x, pos, y, shift = x.to(device), pos.to(device), y.to(device), shift.to(device)
            snd = None if snd is None else snd.to(device)
            roles = None if roles is None else roles.to(device)
            heard = None if heard is None else heard.to(device)
            with torch.autocast(device.type, dtype=torch.bfloat16, enabled=use_amp):
                logits, _ = net(x, pos, None, *((None, None) if snd is None else (snd[:, :, 0], snd[:, :, 1])),
                                shift=shift, roles=roles, player=heard)
            logits = logits.float()
            if allowed is not None:
                logits = logits.masked_fill(~allowed.to(device), float("-inf"))
            loss = F.cross_entropy(logits.reshape(-1, logits.shape[-1]), y.reshape(-1), ignore_index=-100)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.clip)
            opt.step()
            if ema is not None:
                with torch.no_grad():  # short memory at first, so early averages are not the random init
                    decay = min(cfg.ema, (1 + step) / (10 + step))
                    for e, p in zip(ema.parameters(), model.parameters()):
                        e.lerp_(p, 1 - decay)
            n = int((y != -100).sum())
            loss_sum += loss.item() * n
            tokens_sum += n
            bar.set_postfix(loss=f"{loss.item():.3f}", lr=f"{lr:.1e}")
        hist.seconds += time.time() - t0
        hist.tokens_seen += int(tokens_sum) * world
        hist.epoch = epoch
        if rank == 0:
            kept = ema if ema is not None else model  # the weights that are validated and saved
            v = validate(kept, valid_pieces, valid_masks, device) if valid_pieces else {"nll_per_event": float("nan"), "accuracy": float("nan")}
            hist.train_loss.append(loss_sum / max(tokens_sum, 1))
            hist.valid_nll.append(v["nll_per_event"])
            hist.valid_acc.append(v["accuracy"])
            improved = not valid_pieces or v["nll_per_event"] < hist.best_valid
            if improved:
                hist.best_valid, hist.best_epoch = v["nll_per_event"], epoch
                save_style(out, kept, dict(meta, epoch=epoch, valid=v, history=asdict(hist)))
            save_checkpoint(ckpt, model, opt, hist, cfg, {"meta": meta}, ema)
            plot_losses(hist, out.with_name(out.name + ".loss.png"))
            log(json.dumps({"epoch": epoch, "train_loss": round(hist.train_loss[-1], 4),
                            "valid_nll": round(v["nll_per_event"], 4), "valid_acc": round(v["accuracy"], 4),
                            "seconds": round(time.time() - t0, 1), "best": improved,
                            "tokens_per_s": round(tokens_sum * world / (time.time() - t0))}))
        if world > 1:
            dist.barrier()
        if cfg.patience and epoch - hist.best_epoch >= cfg.patience:
            log(f"no better valid NLL for {cfg.patience} epochs: stopping")
            break
        if cfg.minutes and hist.seconds >= 60 * cfg.minutes and epoch < cfg.epochs:
            log(f"{cfg.minutes:g} minutes of training passed after epoch {epoch}: stopping (the best epoch, "
                f"{hist.best_epoch}, is kept)")
            break
    if world > 1:
        dist.destroy_process_group()
    return hist
