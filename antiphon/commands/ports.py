"""`antiphon ports`: the MIDI backends that work here and their ports."""
from __future__ import annotations

import json
import sys

from antiphon.plugin import ports


def add_arguments(parser) -> None:
    parser.add_argument("--backend", default="auto", choices=["auto", *ports.BACKENDS],
                        help="list only this backend (default: every backend that works here)")
    parser.add_argument("--json", action="store_true", help="print JSON: {backend: {inputs: [...], outputs: [...]}}")


def run(args) -> int:
    if args.backend == "auto":
        backends = ports.available_backends()
    else:
        backends = [ports.resolve_backend(args.backend)]
    listing = ports.list_ports(backends) if backends else {}
    if args.json:
        print(json.dumps({"backends": listing, "available": backends,
                          **({} if backends else {"hint": ports.no_backend_message()})}))
        return 0 if backends else 1
    if not backends:
        print(ports.no_backend_message(), file=sys.stderr)
        return 1
    for b, io in listing.items():
        print(f"{b}:")
        print("  inputs (Antiphon can read from):")
        for n in io["inputs"] or ["(none)"]:
            print(f"    {n}")
        print("  outputs (Antiphon can send to):")
        for n in io["outputs"] or ["(none)"]:
            print(f"    {n}")
    print(f"virtual ports: {ports.IN_PORT_NAME!r} / {ports.OUT_PORT_NAME!r} under client {ports.CLIENT_NAME!r}")
    return 0
