"""The jam of tests/test_live_jack.py run many times, its figures printed run by run and summed up; nothing is
asserted, so that other builds can be measured the same way side by side.

    .venv/bin/python -m tests.measure_jam --runs 12                      # 97-176 BPM, one with -J 5
    .venv/bin/python -m tests.measure_jam --runs 4 --server pipewire
    .venv/bin/python -m tests.measure_jam --runs 4 --args "--candidates 1"
    .venv/bin/python -m tests.measure_jam --runs 8 --switch-to jsb-quarter     # a style switch mid-session
    .venv/bin/python -m tests.measure_jam --runs 4 --realtime-server      # jackd -R, its own default
    ANTIPHON_JACK_IO=rtmidi .venv/bin/python -m tests.measure_jam --runs 4     # python-rtmidi, polled
    ANTIPHON_TEST_COMMAND="env PYTHONPATH=/tmp/old .venv/bin/python -m antiphon" .venv/bin/python -m tests.measure_jam

(The last: an older checkout laid out as the installed package, e.g. `git archive` of a commit with engine/,
plugin/, gui/ and training/ moved under antiphon/.) Prints the load of the machine before and after, since
other jobs on a shared machine change what a --no-realtime JACK server can do.
"""
from __future__ import annotations

import argparse
import dataclasses
import os
import shlex
import tempfile
import time
import traceback
from pathlib import Path

import numpy as np


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--runs", type=int, default=12)
    ap.add_argument("--server", choices=["jack", "pipewire"], default="jack")
    ap.add_argument("--args", default="", help="extra arguments for antiphon live")
    ap.add_argument("--no-busy", action="store_true", help="no busy process beside the jam")
    ap.add_argument("--realtime-server", action="store_true", help="jackd -R (its own default) instead of "
                    "--no-realtime: the server's driver and the clients' process threads run SCHED_FIFO")
    ap.add_argument("--switch-to", default="", help="a shipped style the player selects (Program Change) a beat "
                    "before the first call ends")
    opts = ap.parse_args()
    os.environ["ANTIPHON_MEASURE_RUNS"] = str(opts.runs)
    from tests.jack import JackServer, PipeWireServer
    from tests.test_live_jack import cases, describe, jam, jam_figures

    print(f"load before: {os.getloadavg()}", flush=True)
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for case in cases():
            case = dataclasses.replace(case, switch_to=opts.switch_to)
            server = PipeWireServer() if opts.server == "pipewire" else JackServer(realtime=opts.realtime_server)
            t0 = time.monotonic()
            try:
                with server as jack:
                    r = jam(jack, case, Path(tmp), busy=not opts.no_busy, extra_args=tuple(shlex.split(opts.args)))
                f = jam_figures(r)
                rows.append(f)
                print(f"{describe(f, case.id)} [{time.monotonic() - t0:.0f} s, load {os.getloadavg()[0]:.2f}]",
                      flush=True)
                if f["mismatches"]:
                    print(f"  recording vs dump (position in ticks, note-on, pitch): {f['mismatches'][:8]}", flush=True)
            except Exception as exc:  # a run that failed is a figure too
                rows.append(None)
                print(f"{case.id}: FAILED {type(exc).__name__}: {str(exc)[:300]}", flush=True)
                traceback.print_exc()
    ok = [f for f in rows if f is not None]
    if ok:
        clean = [f for f in ok if not f["frame_recorder_xruns"]]
        first = [ms for f in clean for ms in f["first_ms"]] or [float("nan")]
        every_first = [ms for f in ok for ms in f["first_ms"]]
        near = [ms for f in ok for ms in f["first_tick_ms"]]
        print(f"\n{len(ok)} of {len(rows)} runs measured, {len(ok) - len(clean)} of them with the frame recorder "
              f"missing cycles; first notes from the tick they were meant for max {max(every_first):.2f} ms ({max(first):.2f}, "
              f"median {np.median(first):.2f} in runs with a sound recorder), from the nearest tick max {max(near):.2f} ms; "
              f"onsets p99 worst {max(f['p99'] for f in ok):.2f} ms; lost ticks "
              f"{sum(f['lost'] or 0 for f in ok)} ({sum(f['lost_here'] or 0 for f in ok)} of them due in cycles "
              f"the server did not run Antiphon's client in; of the {sum(n for f in ok for *_, n in f['lost_spans'])} "
              f"it said where, {sum(f['lost_heard'] for f in ok)} reached the frame recorder); late for their tick {sum(f['late'] or 0 for f in ok)}, went out after it "
              f"{sum(f['after_tick'][0] for f in ok)} ({sum(f['after_tick'][1] for f in ok)} note-ons, worst "
              f"{max(f['after_tick'][2] for f in ok):.2f} ms); late cycles "
              f"naming Antiphon {sum(f['xruns'] for f in ok)} (the rig's clients {sum(f['rig_xruns'] for f in ok)}); "
              f"runs with notes hanging after Stop/SIGINT {sum(bool(f['after_stop'] or f['left']) for f in ok)}; "
              f"recording mismatches {sum(len(f['mismatches']) for f in ok)}")
    print(f"load after: {os.getloadavg()}")


if __name__ == "__main__":
    main()
