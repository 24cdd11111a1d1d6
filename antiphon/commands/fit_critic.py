"""`antiphon fit-critic --style FILE [--calls bach folk fiddle | DATA...]`: train the critic's realism
discriminator on the training split's calls (training/discriminator_fit.py), then fit the tilt it plays
by on the valid calls, so that the answers it draws are distributed like their real continuations
(training/critic_fit.py); both are stored in the style."""
from __future__ import annotations

import argparse
import json
import shlex
import sys

from antiphon import arguments


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--style", required=True, help="style file whose critic to fit (rewritten unless --out)")
    p.add_argument("--calls", nargs="+", default=["bach", "folk", "fiddle"], metavar="SET",
                   help="call sets (bach, folk, fiddle) or DATA specs of your own music: their valid split")
    p.add_argument("--candidates", type=arguments.int_in(2, 256), default=32,
                   help="candidates planned per call while collecting (fits for any K up to it)")
    p.add_argument("--k", type=arguments.int_in(2, 256), default=arguments.SESSION_DEFAULTS["candidates"],
                   help="the K the weights are fit for (the session's default)")
    p.add_argument("--kinship", type=arguments.float_in(0.0, 4.0), default=arguments.SESSION_DEFAULTS["kinship"],
                   help="how far planned candidates lean towards the call's pitch classes while collecting")
    p.add_argument("--register", choices=["follow", "free"], default=arguments.SESSION_DEFAULTS["register"],
                   help="the register rule the session applies while collecting (the session's default)")
    p.add_argument("--temperature", type=arguments.temperature, default=arguments.DEFAULT_TEMPERATURE,
                   help="sampling temperature while collecting (the one the style will play at)")
    p.add_argument("--top-p", type=arguments.top_p, default=arguments.DEFAULT_TOP_P, help="top-p while collecting")
    p.add_argument("--seeds", type=arguments.int_in(1, 20), default=1,
                   help="plans per call (more for small call sets: the fit is noisy on few calls)")
    p.add_argument("--limit", type=arguments.int_in(1), help="at most this many valid calls from each set (quick runs)")
    p.add_argument("--train-calls", type=arguments.int_in(0), default=200,
                   help="training calls per set the discriminator learns from (0: keep the style's discriminator)")
    p.add_argument("--discriminator-sets", nargs="+", metavar="SET",
                   help="call sets the discriminator learns from (default: --calls; leave out-of-domain sets out)")
    p.add_argument("--out", type=arguments.writable_file, help="write the fitted style here instead")
    p.add_argument("--json", action="store_true", help="print the fit as one JSON object")


def run(args) -> int:
    from antiphon.engine.session import SessionParams
    from antiphon.engine.style import load_style
    from antiphon.training import critic_fit, discriminator_fit

    if args.k > args.candidates:
        raise ValueError(f"--k {args.k} is more than the --candidates {args.candidates} collected")
    log = None if args.json else (lambda m: print(m, file=sys.stderr, flush=True))
    params = SessionParams(kinship=args.kinship, register=args.register, temperature=args.temperature,
                           top_p=args.top_p)
    target = args.out or args.style
    disc_report = None
    if args.train_calls:
        sets = tuple(args.discriminator_sets or args.calls)
        real, sampled = discriminator_fit.collect(load_style(args.style), sets, "train", args.train_calls,
                                                  params=params, log=log)
        if not len(real):
            raise ValueError(f"no training calls in {' '.join(sets)} to train the discriminator on")
        disc = discriminator_fit.fit(real, sampled)
        disc_report = discriminator_fit.report(disc, real, sampled) | {"sets": list(sets)}
        critic_fit.write_critic(args.style, None, args.out, discriminator=disc.to_meta() | {"fit": disc_report})
        if log:
            log(f"discriminator: {len(real)} real continuations against {len(sampled)} samples, cross-validated "
                f"accuracy {disc_report['cv_accuracy']:.3f}")
    source = target if args.train_calls else args.style  # where the discriminator to fit with now is
    style = load_style(source)
    data = critic_fit.collect(style, sets=tuple(args.calls), split="valid", k=args.candidates, seeds=args.seeds,
                              params=params, limit=args.limit, log=log)
    if not data.terms:
        raise ValueError(f"no valid calls in {' '.join(args.calls)} to fit on")
    result = critic_fit.fit(data, k=args.k, discriminator=style.runtime().critic_discriminator)
    command = "antiphon fit-critic " + " ".join(shlex.quote(a) for a in sys.argv[2:])
    critic_fit.write_critic(source, result, args.out, {"calls": args.calls, "candidates": args.candidates, "k": args.k,
                                                   "kinship": args.kinship, "register": args.register,
                                                   "temperature": args.temperature, "top_p": args.top_p,
                                                   "seeds": args.seeds,
                                                   "valid_calls": len(data.terms), "command": command})
    result["discriminator"] = disc_report
    print(json.dumps(result) if args.json else
          f"critic fitted on {len(data.terms)} valid calls for K={args.k}: {json.dumps(result['weights'])}")
    return 0
