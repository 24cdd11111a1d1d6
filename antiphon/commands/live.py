"""`antiphon live`: the duet partner on virtual ports (or named ones), with the panel or headless."""
from __future__ import annotations

import argparse
import signal
import threading
import time


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--backend", default="auto", choices=["auto", "alsa", "jack", "coremidi"])
    p.add_argument("--in-port", help="connect to this existing input port instead of creating 'Antiphon In'")
    p.add_argument("--out-port", help="connect to this existing output port instead of creating 'Antiphon Out'")
    p.add_argument("--bpm", type=float, default=120.0, help="internal clock tempo when no MIDI clock arrives")
    p.add_argument("--meter", default="4/4")
    p.add_argument("--style", default="default", help="shipped style name or style file")
    p.add_argument("--channel", type=int, default=1, help="output MIDI channel 1..16 (default 1)")
    p.add_argument("--mode", default="call_response", choices=["call_response", "accompany"])
    p.add_argument("--temperature", type=float, default=0.9)
    p.add_argument("--top-p", type=float, default=0.95)
    p.add_argument("--response-bars", type=int, default=2)
    p.add_argument("--phrase-end", default="silence", choices=["silence", "bar", "pedal", "cc"])
    p.add_argument("--silence-beats", type=float, default=1.0)
    p.add_argument("--answer-on", default="beat", choices=["beat", "bar"])
    p.add_argument("--lookahead", type=float, default=1.0, help="beats generated ahead of the playhead")
    p.add_argument("--key-lock", action="store_true", help="answer only in the call's key")
    p.add_argument("--passthrough", action="store_true", help="echo the player's notes to the output")
    p.add_argument("--record", metavar="FILE.mid", help="record call and answer (saved every second)")
    p.add_argument("--seed", type=int)
    p.add_argument("--headless", action="store_true", help="no panel: print a status line")
    p.add_argument("--screenshot", metavar="PNG", help="render the panel after a moment, write PNG, exit")
    p.add_argument("--duration", type=float, help="exit after this many seconds")


def config_from(args):
    from antiphon.engine.events import Meter
    from antiphon.engine.session import SessionParams

    from antiphon.plugin.live import LiveConfig

    if not 1 <= args.channel <= 16:
        raise ValueError("--channel must be 1..16")
    params = SessionParams(mode=args.mode, temperature=args.temperature, top_p=args.top_p,
                           response_bars=args.response_bars, phrase_end=args.phrase_end,
                           silence_beats=args.silence_beats, answer_on=args.answer_on,
                           lookahead_beats=args.lookahead, key_lock=args.key_lock).validated()
    return LiveConfig(backend=args.backend, in_port=args.in_port, out_port=args.out_port, bpm=args.bpm,
                      meter=Meter.parse(args.meter), style=args.style, channel=args.channel - 1,
                      passthrough=args.passthrough, record=args.record, params=params, seed=args.seed)


def run(args) -> int:
    from antiphon.plugin.live import LiveEngine, status_line

    config = config_from(args)
    if not args.headless:
        from antiphon.gui.app import run_panel

        return run_panel(config, screenshot=args.screenshot, duration=args.duration)
    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    engine = LiveEngine(config)
    engine.start()
    snap = engine.snapshot()
    print(f"Antiphon live: style {engine.style_name}, in '{snap.ports[0]}', out '{snap.ports[1]}' "
          f"({snap.backend}); Ctrl-C to stop", flush=True)
    t_end = time.monotonic() + args.duration if args.duration else None
    try:
        while not stop.wait(0.5):
            print(status_line(engine.snapshot()), flush=True)
            if t_end is not None and time.monotonic() >= t_end:
                break
    finally:
        engine.close()
        st = engine.sender.stats()
        print(f"stopped: {st.sent} messages sent, {st.sounding} notes left sounding, "
              f"worst lateness {st.late_worst_ms:.2f} ms", flush=True)
    return 0
