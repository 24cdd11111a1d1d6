"""The python-rtmidi fallback's pure parts, with fake time: driver delta times to perf_counter() times, and the
tick queue's cut (the same rule as the native client's, tested on real JACK in tests/test_ports_jack.py)."""
from __future__ import annotations

import itertools
import random

import pytest

from antiphon.plugin.polled_io import DeltaTimeline, cancel_entries


def test_delta_times_become_driver_times_whatever_the_polling_lag():
    """Messages arrive every 20 ms (driver time); a poller sees them 0.1-3 ms late, in bursts. The stamps
    keep the driver's spacing and settle on the earliest arrival consistent with every sighting."""
    rng = random.Random(1)
    tl = DeltaTimeline()
    true0, stamps, truth = 100.0, [], []
    for i in range(200):
        t = true0 + 0.02 * i
        seen = t + rng.uniform(0.0001, 0.003)
        stamps.append(tl.stamp(0.0 if i == 0 else 0.02, seen))
        truth.append(t)
    errs = [s - t for s, t in zip(stamps, truth)]
    assert all(e >= -1e-9 for e in errs)  # never before the message arrived
    assert max(errs[20:]) < 0.0005  # within the least lag seen (0.1 ms) plus the drift allowance
    spacing = [b - a for a, b in zip(stamps[20:], stamps[21:])]
    assert max(abs(d - 0.02) for d in spacing) < 5e-4  # the anchor moves by the drift allowance at most


def test_delta_times_follow_a_drifting_clock():
    """The driver's clock runs 300 ppm slow against perf_counter(): the anchor rises with it."""
    tl = DeltaTimeline()
    errs = []
    for i in range(3000):  # 60 s
        t = 10.0 + 0.02 * i * (1 + 300e-6)
        s = tl.stamp(0.0 if i == 0 else 0.02, t + 0.0005)
        errs.append(s - t)
    assert max(abs(e) for e in errs[100:]) < 0.0006


def on(p, ch=0):
    return bytes([0x90 | ch, p, 90])


def off(p, ch=0):
    return bytes([0x80 | ch, p, 0])


def test_the_cut_keeps_what_comes_before_and_ends_what_would_still_sound():
    seq = itertools.count()
    q = [(10, next(seq), 1, on(60)), (12, next(seq), 2, off(60)),  # before the cut: kept
         (14, next(seq), 3, on(64)), (30, next(seq), 4, off(64)),  # 64 starts before, its off after: ends at 20
         (25, next(seq), 5, on(67)), (26, next(seq), 6, off(67)),  # after: dropped (its off too: sent at
         # the cut, and skipped there by the note bookkeeping, 67 never having sounded)
         (28, next(seq), 7, off(70))]  # an off for a note sounding already (not in the queue): sent at the cut
    kept = sorted(cancel_entries(q, 20, seq))
    assert [(o, m) for o, _, _, m in kept] == [(10, on(60)), (12, off(60)), (14, on(64)), (20, off(64)),
                                               (20, off(67)), (20, off(70))]
    assert [t for _, _, t, _ in kept][:3] == [1, 2, 3]  # tags kept: the recording knows where they were meant


@pytest.mark.parametrize("cut", [0, 5, 100])
def test_the_cut_at_the_edges(cut):
    seq = itertools.count()
    q = [(5, next(seq), 0, on(60)), (6, next(seq), 0, off(60))]
    kept = sorted(cancel_entries(q, cut, seq))
    if cut <= 5:
        assert [m for *_, m in kept] == [off(60)]  # its off was dropped: sent at the cut (skipped if silent)
    else:
        assert [m for *_, m in kept] == [on(60), off(60)]
