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
    p.add_argument("--preset", choices=["auto", *sorted(PRESETS)], default="auto",
                   help="model size; auto sizes the whole run to the data (fine-tunes the default style for a "
                        "small folder) and fills in what you leave out below")
    p.add_argument("--epochs", type=A.int_in(1), help="passes over the training split (auto: about 600 steps)")
    p.add_argument("--minutes", type=A.float_in(0.0, lo_open=True), default=15.0,
                   help="stop after the epoch that passes this much training time (the best epoch is kept)")
    p.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda"],
                   help="where to train (auto: CUDA when torch sees a GPU)")
    p.add_argument("--resume", action="store_true", help="continue from OUT.ckpt")
    p.add_argument("--overwrite", action="store_true",
                   help="replace an existing OUT and its checkpoint (without it, an existing OUT is refused)")
    p.add_argument("--from", "--init", dest="init", metavar="STYLE",
                   help="fine-tune: start from this style's weights and model size; 'scratch': a model of its own "
                        "(auto: the default style under 2,000,000 train events)")
    p.add_argument("--batch-size", type=A.int_in(1), help=f"windows per optimiser step ({TrainConfig.batch_size} "
                   "where the preset is not auto)")
    p.add_argument("--seq-len", type=A.int_in(2), help="events per training window (backpropagation through time; "
                   f"{TrainConfig.seq_len} where the preset is not auto)")
    p.add_argument("--lr", type=A.float_in(0.0, 1.0, lo_open=True),
                   help=f"peak learning rate of the cosine schedule (AdamW; {TrainConfig.lr} where not auto)")
    p.add_argument("--transpose", type=A.int_in(0, 12), default=TrainConfig.transpose,
                   help="random transposition range in semitones (0 = no augmentation)")
    p.add_argument("--patience", type=A.int_in(0),
                   help="stop after N epochs without a better valid NLL (0 = never; auto: 4, else 0)")
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
    p.add_argument("--json", action="store_true", help="end with one JSON object of figures instead of the report")


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
    ckpt = out.with_name(out.name + ".ckpt")
    refuse_to_replace(out, ckpt, args.resume, args.overwrite)
    data = load_data(args.data, args.cache)
    for line in data.warnings:
        print(f"antiphon train: warning: {line}", file=sys.stderr, flush=True)
    train_pieces, valid_pieces = data["train"].pieces, data["valid"].pieces
    if not train_pieces:
        raise ValueError(data.why_empty("train", args.data))
    fill_in_the_run(args, sum(len(t) - 1 for t, _ in train_pieces), len(train_pieces))
    cfg = TrainConfig(epochs=args.epochs, batch_size=args.batch_size, seq_len=args.seq_len, lr=args.lr,
                      transpose=args.transpose, patience=args.patience, seed=args.seed, device=args.device,
                      threads=args.threads, masked_loss=args.masked_loss, weight_decay=args.weight_decay,
                      ema=args.ema, minutes=args.minutes)
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
    if args.init and args.init != "scratch":
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
    if mcfg.role_input and base is None and not any(v is not None for v in data["train"].voices):
        print("antiphon train: warning: --role-input, but no training piece has several parts (MusicXML, "
              "ABC, kern or music21 corpus scores): the model will not learn who plays what",
              file=sys.stderr, flush=True)
    try:
        hist = train(train_pieces, valid_pieces, mcfg, cfg, out, meta, resume=args.resume,
                     log=lambda s: print(s, flush=True), init=init, train_voices=data["train"].voices)
    except KeyboardInterrupt:
        print(f"antiphon train: {interrupted(out, ckpt, getattr(args, '_argv', None))}", file=sys.stderr, flush=True)
        return 130
    if (hist.best_epoch or init is not None) and out.exists():
        if not hist.best_epoch:
            print(f"antiphon train: no epoch beat the style it started from on the valid pieces: {out} keeps "
                  f"its weights", file=sys.stderr, flush=True)
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
        if args.json:
            print(json.dumps({"style": str(out), "best_epoch": hist.best_epoch, **tuned, **figures}))
        else:
            print("\n".join(style_report(out, data, figures, args.device)), flush=True)
    return 0


def style_report(out: Path, data, figures: dict, device: str) -> list[str]:
    """The report in words on the test split (valid where there is no test split)."""
    from antiphon.engine.style import load_style
    from antiphon.training.evaluate import score_markov
    from antiphon.training.style_report import continuations, report

    split = "test" if "test" in figures else "valid" if "valid" in figures else None
    if split is None:
        return [f"{out}: written; no held-out pieces to judge it by (give more files)"]
    markov = score_markov(data, split)
    cont = continuations(load_style(str(out)).runtime(), data[split], arguments.DEFAULT_TEMPERATURE,
                         arguments.DEFAULT_TOP_P)
    return report(str(out), split, figures[split], markov, cont, f"antiphon live --style {shlex.quote(str(out))}")


def refuse_to_replace(out: Path, ckpt: Path, resume: bool, overwrite: bool) -> None:
    """Trained work is never replaced unless asked: an existing style or checkpoint needs --resume (to go on
    from the checkpoint) or --overwrite (to start again)."""
    if overwrite:
        return
    if not resume and (out.exists() or ckpt.exists()):
        what = f"{out} already exists" if out.exists() else f"{ckpt} (an earlier training's checkpoint) exists"
        raise ValueError(f"--out {out}: {what}; add --resume to go on training it, --overwrite to replace it, "
                         f"or choose another --out")
    if resume and not ckpt.exists() and out.exists():
        raise ValueError(f"--resume: no checkpoint {ckpt} to go on from, and training again would replace {out}; "
                         f"add --overwrite to do that, or choose another --out")


def interrupted(out: Path, ckpt: Path, argv: list[str] | None) -> str:
    """The line for Ctrl-C during training: what is saved, and the command that goes on from it."""
    from antiphon.engine.style import StyleError, unpack

    try:
        history = unpack(ckpt.read_bytes(), str(ckpt))[1]["history"]
        epoch, best = int(history["epoch"]), int(history["best_epoch"])
    except (OSError, StyleError, KeyError, TypeError, ValueError):
        return "stopped (Ctrl-C) before the first epoch ended: nothing was saved"
    again = [a for a in (argv or []) if a != "--overwrite"]
    if again and "--resume" not in again:
        again.append("--resume")
    resume = "antiphon " + " ".join(shlex.quote(a) for a in again) if again else f"antiphon train ... --out {out} --resume"
    kept = f"; {out} holds the best one so far (epoch {best})" if best and out.exists() else ""
    return f"stopped (Ctrl-C); epoch {epoch} is saved in {ckpt}{kept}. To go on: {resume}"


def fill_in_the_run(args, events: int, pieces: int) -> None:
    """--preset auto: what the command line leaves out, sized to the data (training.run_plan), said in one
    line; any other preset: the fixed defaults."""
    from antiphon.training.run_plan import plan

    sized = any(getattr(args, name, None) is not None for name in ("embed", "hidden", "layers"))
    if args.preset != "auto":
        defaults = {"epochs": 20, "batch_size": TrainConfig.batch_size, "seq_len": TrainConfig.seq_len,
                    "lr": TrainConfig.lr, "patience": 0}
    else:
        run = plan(events, args.init if args.init or not sized else "scratch")
        args.preset = run.preset
        if args.init is None and run.init:
            args.init = run.init
        defaults = {"epochs": run.epochs, "batch_size": run.batch_size, "seq_len": run.seq_len, "lr": run.lr,
                    "patience": run.patience}
        print(f"antiphon train: {run.line(events, pieces)}", file=sys.stderr, flush=True)
    for name, value in defaults.items():
        if getattr(args, name) is None:
            setattr(args, name, value)
