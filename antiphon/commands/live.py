"""`antiphon live`: the duet partner on virtual ports (or named ones), with the panel or headless."""
from __future__ import annotations

import argparse
import signal
import sys
import threading
import time

from antiphon import arguments


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--backend", default="auto", choices=["auto", "alsa", "jack", "coremidi", "winmm"],
                   help="MIDI backend (auto: ALSA, then CoreMIDI, then a running JACK server)")
    p.add_argument("--in-port", help="connect to this existing input port instead of creating 'Antiphon In'")
    p.add_argument("--out-port", help="connect to this existing output port instead of creating 'Antiphon Out'")
    p.add_argument("--bpm", type=arguments.bpm, default=120.0,
                   help=f"internal clock tempo when no MIDI clock arrives, {arguments.BPM_RANGE[0]:g}.."
                        f"{arguments.BPM_RANGE[1]:g}")
    p.add_argument("--meter", type=arguments.meter, default="4/4", help="time signature of the bar grid")
    p.add_argument("--style", default="default", help="shipped style name or style file")
    p.add_argument("--channel", type=arguments.int_in(1, 16), default=1, help="output MIDI channel, 1..16")
    p.add_argument("--mode", default="call_response", choices=["call_response", "accompany"],
                   help="answer each phrase you play, or play along while you play")
    p.add_argument("--temperature", type=arguments.temperature, default=arguments.DEFAULT_TEMPERATURE,
                   help="sampling temperature, 0.05..3: higher is wilder")
    p.add_argument("--top-p", type=arguments.top_p, default=arguments.DEFAULT_TOP_P,
                   help="nucleus sampling, 0.05..1: sample only from the likeliest notes that make up this share")
    p.add_argument("--response-bars", type=arguments.bars, default=2, help="length of each answer in bars, 1..64")
    p.add_argument("--phrase-end", default="silence", choices=["silence", "bar", "pedal", "cc"],
                   help="what ends your phrase and cues the answer: a rest, a bar line, lifting the sustain "
                        "pedal, or CC 80")
    p.add_argument("--silence-beats", type=arguments.float_in(0.25, 16.0), default=1.0,
                   help="with --phrase-end silence: beats of rest that end a phrase, 0.25..16")
    p.add_argument("--answer-on", default="beat", choices=["beat", "bar"],
                   help="the answer starts on the next beat or the next bar line")
    p.add_argument("--lookahead", type=arguments.float_in(0.25, 8.0), default=1.0,
                   help="beats generated ahead of the playhead, 0.25..8")
    p.add_argument("--key-lock", action="store_true", help="answer only in the call's key")
    defaults = arguments.SESSION_DEFAULTS
    p.add_argument("--candidates", type=arguments.int_in(1, 1024), default=defaults["candidates"],
                   help="answers planned for each phrase, the critic plays the best (1: sample one as it plays)")
    p.add_argument("--kinship", type=arguments.float_in(0.0, 4.0), default=defaults["kinship"],
                   help="planned answers lean towards the pitch classes of your call, 0..4 (0: only the model)")
    p.add_argument("--end-on", default=defaults["end_on"], choices=["stable", "tonic", "any"],
                   help="the answer ends on a note of the tonic triad, on the tonic, or anywhere (a hard rule "
                        "of the critic, dropped only when no candidate keeps it)")
    p.add_argument("--register", default=defaults["register"], choices=["follow", "free"],
                   help="the answer stays within a fifth of the call's register, or goes where it likes")
    p.add_argument("--polyphony", default=defaults["polyphony"], choices=["call", "free"],
                   help="the answer sounds at most as many notes at once as your call did, or up to 8")
    p.add_argument("--voicing", default=defaults["voicing"], choices=["below", "above", "around"],
                   help="--mode accompany: play below, above or around your notes")
    p.add_argument("--comp", default=defaults["comp"], choices=["free", "follow", "beats", "sustain"],
                   help="--mode accompany: the accompaniment's rhythm: its own, your onsets, the beats, or "
                        "chords held from one of your notes to the next")
    p.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda"],
                   help="where planned answers are computed (auto: CUDA when present; the model's own stream "
                        "and every port stay on the CPU)")
    p.add_argument("--passthrough", action="store_true", help="echo the player's notes to the output")
    p.add_argument("--record", metavar="FILE.mid", type=arguments.writable_file,
                   help="record call and answer (saved every second)")
    p.add_argument("--seed", type=int, help="sampling seed, for answers that repeat run to run (default: random)")
    p.add_argument("--headless", action="store_true",
                   help="no panel: print a status line (the default where there is no display)")
    p.add_argument("--verbose", action="store_true",
                   help="headless: print the full status line of figures twice a second, as new lines (a log, "
                        "not a terminal, always gets it)")
    p.add_argument("--screenshot", metavar="PNG", type=arguments.writable_file,
                   help="render the panel after a moment, write PNG, exit")
    p.add_argument("--duration", type=arguments.float_in(0.0, lo_open=True),
                   help="exit after this many seconds (default: run until Ctrl-C)")


def config_from(args):
    from antiphon.engine.events import Meter
    from antiphon.engine.session import SessionParams

    from antiphon.plugin.live import LiveConfig

    params = SessionParams(mode=args.mode, temperature=args.temperature, top_p=args.top_p,
                           response_bars=args.response_bars, phrase_end=args.phrase_end,
                           silence_beats=args.silence_beats, answer_on=args.answer_on,
                           lookahead_beats=args.lookahead, key_lock=args.key_lock, candidates=args.candidates,
                           kinship=args.kinship, end_on=args.end_on, register=args.register,
                           polyphony=args.polyphony, voicing=args.voicing, comp=args.comp).validated()
    return LiveConfig(backend=args.backend, in_port=args.in_port, out_port=args.out_port, bpm=args.bpm,
                      meter=Meter.parse(args.meter), style=args.style, channel=args.channel - 1,
                      passthrough=args.passthrough, record=args.record, params=params, seed=args.seed,
                      device=args.device)


def run(args) -> int:
    from antiphon.console import StatusPrinter, start_lines
    from antiphon.plugin.live import LiveEngine, exit_lines

    from antiphon.gui.app import panel_unavailable
    from antiphon.plugin.ports import resolve_backend

    config = config_from(args)
    resolve_backend(args.backend)  # no backend: the ports module's one actionable line, before anything opens
    problem = None if args.headless else panel_unavailable(args.screenshot)
    if problem:
        print(f"antiphon live: {problem}: running headless (as with --headless)", file=sys.stderr, flush=True)
    if not args.headless and not problem:
        from antiphon.gui.app import run_panel

        return run_panel(config, screenshot=args.screenshot, duration=args.duration)
    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    engine = LiveEngine(config)
    engine.start()
    print("\n".join(start_lines(engine.style_name, engine.snapshot())), flush=True)
    status = StatusPrinter(sys.stdout, verbose=args.verbose)
    t_end = time.monotonic() + args.duration if args.duration else None
    lost = None
    try:
        while not stop.wait(0.1):
            lost = engine.ports_lost()
            if lost:
                break
            status.show(engine.snapshot())
            if t_end is not None and time.monotonic() >= t_end:
                break
    finally:
        status.done()
        engine.close()
        print("\n".join(exit_lines(engine)), flush=True)
    if lost:
        print(f"antiphon live: {lost}; stopped", file=sys.stderr, flush=True)
        return 1
    return 0
