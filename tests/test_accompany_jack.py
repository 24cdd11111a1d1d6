"""`antiphon live --mode accompany` on real JACK ports: the accompaniment listens within the beat (the rig and
its figures: antiphon/accompany_latency.py). The test checks the behaviour: it answers on the player's own
tick, at the note's own frame where the reaction was armed ahead, consonant with what the player sounds,
every note-on with its note-off after SIGINT. The latency figures print with `pytest -s`; `antiphon bench
--jack 10 --json` measures several runs (speed goals live in benchmarks, not in timed tests).
"""
from __future__ import annotations

import re

import pytest

from antiphon.accompany_latency import accompany_jam, figures
from tests.jack import JackServer

pytestmark = [pytest.mark.jack, pytest.mark.slow]


def test_accompaniment_answers_the_players_note_on_its_tick(tmp_path):
    with JackServer() as jack:
        r = accompany_jam(jack, 100.0)
        f = figures(r)
    print(f"\naccompaniment on JACK at 100 BPM: { {k: v for k, v in f.items() if k != 'latencies_ms'} }")
    if f["player_onsets"] < r["played"]:  # the recorder missed cycles, and with them messages and its frames
        pytest.skip(f"the server starved: jack_midi_dump lost {r['played'] - f['player_onsets']} of the player's "
                    f"{r['played']} note-ons, so its figures measure it, not Antiphon ({f})")
    assert f["player_onsets"] >= 14 and f["band_onsets"] > 0
    assert f["answered_on_their_tick"] > 0  # it listens: it comes in on the player's own tick
    # the reaction armed ahead goes out in the JACK cycle of the player's note, at its very frame
    assert f["at_the_note"] > 0 and int(re.findall(r"answered at the note (\d+)", r["log"])[-1]) > 0
    # a note planned for the very tick the player strikes may go out first; the reaction ends it at once,
    # so what sounds against the player is consonant nearly all the time (the fake-time benchmark: 1.000)
    assert f["consonance"] >= 0.95
    assert not f["hanging"]  # every note-on has its note-off after SIGINT
