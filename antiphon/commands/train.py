"""`antiphon train DATA... --out STYLE`: prepare (cached), train, score held-out data, write the style."""
from __future__ import annotations

import argparse
import json
import shlex
import sys
from dataclasses import fields
from pathlib import Path

from antiphon import arguments
from antiphon.engine.model import PRESETS, ModelConfig

from antiphon.training.train import TrainConfig


def add_arguments(p: argparse.ArgumentParser) -> None:
    A = arguments
    p.add_argument("data", nargs="+", metavar="DATA",
                   help="files, folders, corpus:bach|folk|fiddle|broad|default, or jsb-quarter:PATH")
    p.add_argument("--out", required=True, type=A.writable_file, help="style file to write (e.g. mystyle.style)")
    p.add_argument("--preset", choices=sorted(PRESETS), default="small", help="model size")
    p.add_argument("--epochs", type=A.int_in(1), default=20, help="passes over the training split")
    p.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda"],
                   help="where to train (auto: CUDA when torch sees a GPU)")
    p.add_argument("--resume", action="store_true", help="continue from OUT.ckpt")
    p.add_argument("--init", metavar="STYLE", help="fine-tune: start from this style's weights and model size")
    p.add_argument("--batch-size", type=A.int_in(1), default=TrainConfig.batch_size,
                   help="windows per optimiser step")
    p.add_argument("--seq-len", type=A.int_in(2), default=TrainConfig.seq_len,
                   help="events per training window (backpropagation through time)")
    p.add_argument("--lr", type=A.float_in(0.0, 1.0, lo_open=True), default=TrainConfig.lr,
                   help="peak learning rate of the cosine schedule (AdamW)")
    p.add_argument("--transpose", type=A.int_in(0, 12), default=TrainConfig.transpose,
                   help="random transposition range in semitones (0 = no augmentation)")
    p.add_argument("--patience", type=A.int_in(0), default=0,
                   help="stop after N epochs without a better valid NLL (0 = never)")
    p.add_argument("--weight-decay", type=A.float_in(0.0), default=TrainConfig.weight_decay, help="AdamW weight decay")
    p.add_argument("--ema", type=A.float_in(0.0, 1.0, hi_open=True), default=0.0, metavar="DECAY",
                   help="validate and save an exponential moving average of the weights (e.g. 0.999; 0 = off)")
    p.add_argument("--no-memory", action="store_true",
                   help="do not choose a session memory on valid after training (see `antiphon tune-memory`)")
    p.add_argument("--no-calibrate", action="store_true",
                   help="do not choose a temperature on valid after training (see `antiphon calibrate`)")
    p.add_argument("--masked-loss", action="store_true",
                   help="train on the grammar-masked distribution (the one eval scores and sampling draws from)")
    for name in ("embed", "hidden", "layers"):
        p.add_argument(f"--{name}", type=A.int_in(1), help=f"override the preset's {name} size")
    unit = A.float_in(0.0, 1.0, hi_open=True)
    p.add_argument("--dropout", type=unit, help="override the preset's dropout")
    p.add_argument("--embed-dropout", type=unit, help="override the preset's embedding dropout")
    p.add_argument("--weight-drop", type=unit, help="DropConnect on the LSTM's recurrent weights (e.g. 0.3)")
    p.add_argument("--sounding-input", action="store_true", default=None,
                   help="the model also reads which pitches sound (helps polyphonic data)")
    p.add_argument("--interval-head", action="store_true", default=None,
                   help="note scores also depend on each candidate's interval to the sounding and just-released "
                        "pitches (voice leading; helps polyphonic data)")
    p.add_argument("--interval-roles", action="store_true", default=None,
                   help="with --interval-head, also score intervals to the lowest sounding pitch and to the "
                        "note-on just played")
    p.add_argument("--shift-input", action="store_true", default=None,
                   help="with --transpose, the model is told each training piece's transposition (and reads 0 "
                        "when played): it learns from every key what they share without losing the data's key")
    p.add_argument("--role-input", action="store_true", default=None,
                   help="the model also reads who plays each note: the player or the band (learnt from pieces of "
                        "several parts, one part as the player, the others as the band; used by --mode accompany)")
    p.add_argument("--player-input", action="store_true", default=None,
                   help="with --role-input, the model also reads the pitches the player sounds at each tick, its note "
                        "of that tick included before the band's own of the tick are chosen")
    p.add_argument("--threads", type=A.int_in(0), default=0, help="torch CPU threads (0 = torch's default)")
    p.add_argument("--seed", type=int, default=0, help="seed of the initial weights and the batch order")
    p.add_argument("--name", help="style name stored in the file (default: the file name)")
    p.add_argument("--cache", help="prepared-data cache folder (default ./cache or $ANTIPHON_CACHE)")


def model_config(args, base: ModelConfig | None = None) -> ModelConfig:
    cfg = ModelConfig(**(base or PRESETS[args.preset]).to_dict())
    for f in fields(ModelConfig):
        value = getattr(args, f.name, None)
        if value is not None:
            setattr(cfg, f.name, value)
    if cfg.interval_roles:
        cfg.interval_head = True
    if cfg.player_input:
        cfg.role_input = True
    return cfg


def run(args) -> int:
    from antiphon.training import evaluate
    from antiphon.training.data import load_data
    from antiphon.training.train import pick_device, train

    out = Path(args.out)
    data = load_data(args.data, args.cache)
    for line in data.warnings:
        print(f"antiphon train: warning: {line}", file=sys.stderr, flush=True)
    train_pieces, valid_pieces = data["train"].pieces, data["valid"].pieces
    if not train_pieces:
        raise ValueError(data.why_empty("train", args.data))
    cfg = TrainConfig(epochs=args.epochs, batch_size=args.batch_size, seq_len=args.seq_len, lr=args.lr,
                      transpose=args.transpose, patience=args.patience, seed=args.seed, device=args.device,
                      threads=args.threads, masked_loss=args.masked_loss, weight_decay=args.weight_decay,
                      ema=args.ema)
    meta = {
        "name": args.name or out.stem,
        "data": args.data,
        "command": "antiphon train " + " ".join(shlex.quote(a) for a in sys.argv[2:]) if sys.argv[1:2] == ["train"]
        else "antiphon train " + " ".join(shlex.quote(a) for a in args.data) + f" --out {shlex.quote(str(out))}",
        "pieces": {k: len(v.pieces) for k, v in data.items()},
        "tokens": {k: int(sum(len(t) - 1 for t, _ in v.pieces)) for k, v in data.items()},
    }
    init = None
    base = None
    if args.init:
        from antiphon.engine.style import load_style

        parent = load_style(args.init)
        if parent.is_ensemble:
            raise ValueError(f"--init {args.init}: an ensemble; fine-tune one of its members instead")
        init, base = parent.model.state_dict(), parent.config
        meta["init"] = {"style": args.init, "name": parent.name, "data": parent.meta.get("data"),
                        "command": parent.meta.get("command")}
    mcfg = model_config(args, base)
    if base is not None and (mcfg.embed, mcfg.hidden, mcfg.layers) != (base.embed, base.hidden, base.layers):
        raise ValueError("--init keeps the parent style's size: drop --embed/--hidden/--layers")
    if mcfg.role_input and not any(v is not None for v in data["train"].voices):
        print("antiphon train: warning: --role-input, but no training piece has several parts (MusicXML, "
              "ABC, kern or music21 corpus scores): the model will not learn who plays what",
              file=sys.stderr, flush=True)
    hist = train(train_pieces, valid_pieces, mcfg, cfg, out, meta, resume=args.resume,
                 log=lambda s: print(s, flush=True), init=init, train_voices=data["train"].voices)
    if hist.best_epoch and out.exists():
        tuned = {}
        if valid_pieces and not args.no_calibrate:
            from antiphon.training.calibrate import calibrate

            tuned["calibration"] = calibrate(out, data["valid"], pick_device(args.device))
        if valid_pieces and not args.no_memory:
            from antiphon.training.memory_tune import tune_memory

            tuned["memory_tuning"] = tune_memory(out, data["valid"], pick_device(args.device))
            if "skipped" in tuned["memory_tuning"]:
                print(f"antiphon train: {tuned['memory_tuning']['skipped']}", file=sys.stderr, flush=True)
        figures = evaluate.record_figures(out, data, args.device)
        print(json.dumps({"style": str(out), "best_epoch": hist.best_epoch, **tuned, **figures}))
    return 0
