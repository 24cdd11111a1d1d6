"""The issue's probe, three ways side by side: one MIDI input fed by jack_midi_clock (120 BPM, 10 s) on JACK's
default asynchronous server, with a pure-Python thread busy in the same process, as Antiphon's engine thread is:

- `callback`: python-rtmidi with set_callback (Antiphon's input before: the callback takes the GIL inside
  JACK's process thread);
- `polled`: python-rtmidi without a callback, its queue polled every 0.5 ms from a thread (the fallback);
- `native`: Antiphon's own JACK client (C process callback; plugin/jack_native.py).

Printed per way and run: the server's "Process error" lines, the late cycles its log puts on the probe's client,
and the 0xF8 received against what jack_midi_dump heard. Run: `.venv/bin/python -m tests.measure_input --runs 3`.
"""
from __future__ import annotations

import argparse
import os
import threading
import time

WAYS = ("callback", "polled", "native")


def probe(way: str, seconds: float) -> dict:
    import rtmidi

    from tests.jack import JackServer, jack_env

    with JackServer() as jack, jack_env(jack):
        clock = jack.midi_clock(120)
        dump = jack.midi_dump("probe_rec")
        got = []
        stop = threading.Event()
        if way == "native":
            from antiphon.plugin.jack_native import NativeJack

            port = NativeJack.open(client_name="probe")
            name = port.in_name

            def drain():
                while not stop.is_set():
                    got.extend(e for e in port.read_input() if e[1][0] == 0xF8)
                    time.sleep(0.0005)
        else:
            port = rtmidi.MidiIn(rtmidi.API_UNIX_JACK, name="probe", queue_size_limit=4096)
            port.ignore_types(timing=False)
            port.open_virtual_port("in")
            name = "probe:in"
            if way == "callback":
                port.set_callback(lambda ev, data=None: got.append(ev) if ev[0][0] == 0xF8 else None)

            def drain():
                if way == "callback":  # nothing to poll: no thread of ours wakes beside the busy one
                    stop.wait()
                    return
                while not stop.is_set():
                    while True:
                        ev = port.get_message()
                        if ev is None:
                            break
                        if ev[0][0] == 0xF8:
                            got.append(ev)
                    time.sleep(0.0005)

        def busy():
            x = 0
            while not stop.is_set():
                for i in range(1000):
                    x += i * i

        threads = [threading.Thread(target=drain, daemon=True), threading.Thread(target=busy, daemon=True)]
        for t in threads:
            t.start()
        jack.connect(clock.port, name)
        jack.connect(clock.port, dump.port)
        at = len(jack.log())
        jack.transport("locate 0")
        time.sleep(0.2)
        jack.transport("play")
        time.sleep(seconds)
        jack.transport("stop")
        time.sleep(0.3)
        stop.set()
        for t in threads:
            t.join(2)
        heard = sum(1 for _, m in dump.stop() if m[0] == 0xF8)
        result = {"process_errors": jack.process_errors(at), "late_cycles": jack.xruns("probe", at),
                  "recorder_late": jack.xruns("probe_rec", at), "ticks": len(got), "recorder_ticks": heard}
        if way == "native":
            port.close()
        else:
            port.close_port()
            port.delete()
    return result


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--seconds", type=float, default=10.0)
    opts = ap.parse_args()
    print(f"load before: {os.getloadavg()}", flush=True)
    for run in range(opts.runs):
        for way in WAYS:  # interleaved, so that the machine's load falls on each way alike
            r = probe(way, opts.seconds)
            print(f"run {run + 1} {way:8s}: {r['process_errors']:5d} process errors, {r['late_cycles']:5d} late cycles "
                  f"naming the probe ({r['recorder_late']} the recorder); 0xF8 received {r['ticks']} "
                  f"(the recorder heard {r['recorder_ticks']}) [load {os.getloadavg()[0]:.2f}]", flush=True)
    print(f"load after: {os.getloadavg()}")


if __name__ == "__main__":
    main()
