"""`antiphon prepare DATA... --out DIR [--json] [--jobs N]`: read music into cached token arrays."""
from __future__ import annotations

import argparse
import json
import sys

from antiphon import arguments
from antiphon.training.dataset import prepare
from antiphon.training.sources import CORPUS_SETS


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("data", nargs="+", metavar="DATA",
                        help="a file, a folder (searched recursively), corpus:NAME "
                             f"({', '.join(sorted(CORPUS_SETS))}) or jsb-quarter:PATH")
    parser.add_argument("--out", required=True, help="folder for the prepared arrays and manifest.json")
    parser.add_argument("--json", action="store_true",
                        help='print {"files", "events", "seconds", "skipped"} as JSON')
    parser.add_argument("--jobs", type=arguments.int_in(1), default=None,
                        help="parser processes (default: every core)")
    parser.add_argument("--limit", type=arguments.int_in(1), default=None,
                        help="at most this many pieces from each corpus:NAME (default: all; for quick runs)")


def run(args: argparse.Namespace) -> int:
    summary = prepare(args.data, args.out, jobs=args.jobs, corpus_limit=args.limit,
                      progress=not args.json and sys.stderr.isatty())
    for line in summary["warnings"]:
        print(f"antiphon prepare: warning: {line}", file=sys.stderr, flush=True)
    if args.json:
        print(json.dumps({"files": summary["files"], "events": summary["events"],
                          "seconds": round(summary["seconds"], 3), "skipped": summary["skipped"]}))
        return nothing_read(args, summary)
    print(f"prepared {summary['files']} pieces, {summary['events']} events in {summary['seconds']:.1f} s "
          f"-> {summary['out']}")
    for split, c in summary["splits"].items():
        print(f"  {split:5s}  {c['pieces']:6d} pieces  {c['events']:9d} events")
    if summary["skipped"]:
        print(f"skipped {len(summary['skipped'])}:")
        for s in summary["skipped"][:20]:
            print(f"  {s['path']}: {s['reason']}")
        if len(summary["skipped"]) > 20:
            print(f"  ... and {len(summary['skipped']) - 20} more (see manifest.json)")
    return nothing_read(args, summary)


def nothing_read(args, summary) -> int:
    """Not one piece read is a failure: one line on stderr with the first reasons, exit 1."""
    if summary["files"]:
        return 0
    skipped = summary["skipped"]
    reasons = "; ".join(f"{s['path']}: {s['reason']}" for s in skipped[:3])
    more = f" (and {len(skipped) - 3} more)" if len(skipped) > 3 else ""
    print(f"antiphon prepare: no piece could be read from {' '.join(args.data)}"
          + (f": {reasons}{more}" if reasons else ""), file=sys.stderr)
    return 1
