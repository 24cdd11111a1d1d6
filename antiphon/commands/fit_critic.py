"""`antiphon fit-critic --style FILE [--calls bach folk fiddle | DATA...]`: fit the critic's weights on valid
calls, their real continuations as the target (training/critic_fit.py), and store them in the style."""
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
    p.add_argument("--seeds", type=arguments.int_in(1, 20), default=1,
                   help="plans per call (more for small call sets: the fit is noisy on few calls)")
    p.add_argument("--limit", type=arguments.int_in(1), help="at most this many calls from each set (quick runs)")
    p.add_argument("--out", type=arguments.writable_file, help="write the fitted style here instead")
    p.add_argument("--json", action="store_true", help="print the fit as one JSON object")


def run(args) -> int:
    from antiphon.engine.session import SessionParams
    from antiphon.engine.style import load_style
    from antiphon.training.critic_fit import collect, fit, write_critic

    if args.k > args.candidates:
        raise ValueError(f"--k {args.k} is more than the --candidates {args.candidates} collected")
    style = load_style(args.style)
    data = collect(style, sets=tuple(args.calls), split="valid", k=args.candidates, seeds=args.seeds,
                   params=SessionParams(kinship=args.kinship), limit=args.limit,
                   log=None if args.json else lambda m: print(m, file=sys.stderr, flush=True))
    if not data.terms:
        raise ValueError(f"no valid calls in {' '.join(args.calls)} to fit on")
    result = fit(data, k=args.k, rounds=8)
    command = "antiphon fit-critic " + " ".join(shlex.quote(a) for a in sys.argv[2:])
    write_critic(args.style, result, args.out, {"calls": args.calls, "candidates": args.candidates, "k": args.k,
                                                "kinship": args.kinship, "seeds": args.seeds,
                                                "valid_calls": len(data.terms),
                                                "command": command})
    print(json.dumps(result) if args.json else
          f"critic fitted on {len(data.terms)} valid calls for K={args.k}: {json.dumps(result['weights'])}")
    return 0
