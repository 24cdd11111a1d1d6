"""The accompaniment's latency on real JACK ports: `antiphon live --mode accompany` on a private JACK server
(default asynchronous, dummy driver, -p 64), a player sending a Bach soprano line on jack_midi_clock's ticks,
another process keeping a core busy, and one jack_midi_dump recording the clock, the player and Antiphon Out
on one frame timeline:

    jack_midi_clock ──▶ Antiphon In, the player, the recorder
    player (each note sent on its 0xF8) ──▶ Antiphon In, the recorder
    Antiphon Out ──▶ the recorder

For every note the player strikes, the accompaniment's notes that answer it on the same clock tick (before
the next 0xF8) are found; the time from the player's note-on to the first of them is the added latency.
`antiphon bench --jack RUNS` reports it (`accompany_latency`); tests/test_accompany_jack.py checks the
behaviour on one run.
"""
from __future__ import annotations

import bisect
import re
import signal
import time

import numpy as np

from antiphon.jack_rig import (ANSWER_CH, CALL_CH, TPB, JackServer, find_port, live, midi_player, phrase_events,
                               soprano, unrecorded)

CONSONANT = {0, 3, 4, 5, 7, 8, 9}
BPMS = (97, 120, 143, 160, 176)


def accompany_jam(jack: JackServer, bpm: float, busy: bool = True) -> dict:
    line = soprano(16.0)  # the pickup and the first three phrases
    start = 2 * 96 - TPB
    events = events_played = phrase_events(line, start, gap=1)
    end_tick = start + 17 * TPB
    if busy:
        jack.busy()
    clock = jack.midi_clock(bpm)
    dump = jack.midi_dump(f"acc_rec{len(jack.children)}")
    player = midi_player(jack, events)
    app = live(jack, "--mode", "accompany", "--seed", "5", "--channel", "1")
    a_in, a_out = find_port(jack, ":Antiphon In"), find_port(jack, ":Antiphon Out")
    for src, dst in [(clock.port, a_in), (clock.port, player.clock_port), (clock.port, dump.port),
                     (player.port, a_in), (player.port, dump.port), (a_out, dump.port)]:
        jack.connect(src, dst)
    jack.transport("locate 0")
    time.sleep(0.2)
    jack.transport("play")
    player.wait_tick(end_tick, timeout=90.0)
    app.popen.send_signal(signal.SIGINT)
    rc = app.popen.wait(15.0)
    time.sleep(0.3)
    jack.transport("stop")
    events = dump.stop()
    assert rc == 0, app.output()[-3000:]
    played = sum(1 for _, m in events_played if m[0] & 0xF0 == 0x90 and m[2] > 0)
    return {"events": events, "rate": jack.rate, "log": app.output(), "played": played}


def figures(r: dict) -> dict:
    rate = r["rate"]
    ticks = [f for f, m in r["events"] if m[0] == 0xF8]
    player_on = [(f, m[1]) for f, m in r["events"] if m[0] == 0x90 | CALL_CH and m[2] > 0]
    band = [(f, m) for f, m in r["events"] if m[0] & 0x0F == ANSWER_CH and m[0] & 0xF0 in (0x80, 0x90)]
    band_on = [(f, m[1]) for f, m in band if m[0] & 0xF0 == 0x90 and m[2] > 0]
    latencies, answered, at_the_note = [], 0, 0
    for f, _ in player_on:
        i = bisect.bisect_right(ticks, f)
        next_tick = ticks[i] if i < len(ticks) else f + rate
        same = [g for g, _ in band_on if f <= g < next_tick]
        if same:
            answered += 1
            at_the_note += min(same) == f
            latencies.append((min(same) - f) / rate * 1000)
    # what the player sounds when each of the accompaniment's notes starts
    sounding: dict[int, int] = {}
    timeline = sorted([(f, m) for f, m in r["events"] if m[0] & 0x0F == CALL_CH and m[0] & 0xF0 in (0x80, 0x90)])
    dissonant = 0
    j = 0
    for g, pitch in band_on:
        while j < len(timeline) and timeline[j][0] <= g:
            f, m = timeline[j]
            if m[0] & 0xF0 == 0x90 and m[2] > 0:
                sounding[m[1]] = f
            else:
                sounding.pop(m[1], None)
            j += 1
        dissonant += any((pitch - q) % 12 not in CONSONANT for q in sounding)
    consonant_frames = total_frames = 0  # how long the accompaniment sounds against the player, by frames
    player_notes, band_notes = _notes(timeline), _notes(sorted(band))
    for bs, be, bp in band_notes:
        for ps, pe, pp in player_notes:
            overlap = min(be, pe) - max(bs, ps)
            if overlap > 0:
                total_frames += overlap
                consonant_frames += overlap if (bp - pp) % 12 in CONSONANT else 0
    open_notes: dict[int, int] = {}
    for f, m in band:
        if m[0] & 0xF0 == 0x90 and m[2] > 0:
            open_notes[m[1]] = open_notes.get(m[1], 0) + 1
        else:
            open_notes[m[1]] = 0
    lat = np.array(latencies) if latencies else np.array([np.nan])
    return {"latencies_ms": latencies, "player_onsets": len(player_on), "answered_on_their_tick": answered, "at_the_note": at_the_note,
            "band_onsets": len(band_on),
            "dissonant_onsets": dissonant, "hanging": sorted(p for p, n in open_notes.items() if n),
            "consonance": consonant_frames / total_frames if total_frames else 1.0,
            "latency_ms_p50": float(np.percentile(lat, 50)), "latency_ms_p99": float(np.percentile(lat, 99)),
            "latency_ms_max": float(lat.max())}


def _notes(events) -> list[tuple[int, int, int]]:
    """(start frame, end frame, pitch) of the notes in a stream of note messages."""
    started: dict[int, int] = {}
    out = []
    for f, m in events:
        if m[0] & 0xF0 == 0x90 and m[2] > 0:
            started[m[1]] = f
        elif m[1] in started:
            out.append((started.pop(m[1]), f, m[1]))
    return out


def measure(runs: int, busy: bool = True, bpms: tuple = BPMS) -> dict:
    """`runs` jams at 97-176 BPM, each on a server of its own: the latency over every answered note of the
    runs whose recorder heard every note the player sent and every message Antiphon sent (a starved
    recorder misses cycles, and with them messages and frames: its run measures the machine, not Antiphon),
    with each run's p50 and p99."""
    per_run, pooled, starved = [], [], 0
    for k in range(runs):
        bpm = bpms[k % len(bpms)]
        with JackServer() as jack:
            r = accompany_jam(jack, bpm, busy=busy)
            f = figures(r)
        lost = unrecorded(r["events"], r["log"])
        if lost < 0:
            raise RuntimeError("antiphon live did not say how many messages it sent: " + r["log"][-2000:])
        if f["player_onsets"] < r["played"] or lost > 0:
            starved += 1
            continue
        at_the_note = re.findall(r"answered at the note (\d+)", r["log"])
        pooled += f["latencies_ms"]
        per_run.append({"bpm": bpm, "p50": round(f["latency_ms_p50"], 2), "p99": round(f["latency_ms_p99"], 2),
                        "answered_on_their_tick": f["answered_on_their_tick"], "player_onsets": f["player_onsets"],
                        "band_onsets": f["band_onsets"], "at_the_note": f["at_the_note"],
                        "engine_at_the_note": int(at_the_note[-1]) if at_the_note else 0,
                        "consonance": round(f["consonance"], 3),
                        "hanging": f["hanging"]})
    lat = np.array(pooled) if pooled else np.array([np.nan])
    return {"runs": len(per_run), "runs_starved": starved, "notes": len(pooled),
            "p50": round(float(np.percentile(lat, 50)), 2), "p99": round(float(np.percentile(lat, 99)), 2),
            "max": round(float(lat.max()), 2), "per_run": per_run,
            "server": "jackd --no-realtime -d dummy -r 48000 -p 64, another process busy"}
