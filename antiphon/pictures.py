"""Piano rolls of notes as PNG pictures (matplotlib, no display needed): the demo's and the benchmarks'."""
from __future__ import annotations

NOTE_NAMES = ("C", "C#", "D", "D#", "E", "F", "F#", "G", "G#", "A", "A#", "B")
_NATURALS = {0, 2, 4, 5, 7, 9, 11}


def note_name(pitch: int) -> str:
    """MIDI pitch -> scientific pitch name: 60 -> C4, 78 -> F#5, 21 -> A0."""
    return f"{NOTE_NAMES[pitch % 12]}{pitch // 12 - 1}"


def pitch_ticks(lo: int, hi: int) -> list[int]:
    """The pitches labelled on a roll from lo to hi: every one on a narrow roll, the naturals on a
    middling one, C, E and G on a wide one."""
    span = hi - lo
    keep = (set(range(12)) if span <= 14 else _NATURALS if span <= 30 else {0, 4, 7})
    return [p for p in range(lo, hi + 1) if p % 12 in keep]


def bar_axis(ax, end_ticks: int, meter) -> None:
    """The time axis in bars: a line at each bar, its number at its first beat (bar 1 at tick 0)."""
    beats_per_bar = meter.ticks_per_bar / 24
    bars = int(end_ticks / meter.ticks_per_bar) + 2
    for b in range(0, bars):
        ax.axvline(b * beats_per_bar, color="#999", lw=0.6)
    step = max(1, bars // 16)
    ax.set_xticks([b * beats_per_bar for b in range(0, bars, step)], [str(b + 1) for b in range(0, bars, step)])
    ax.set_xlabel(f"bar ({meter.numerator}/{meter.denominator})")


def piano_roll_png(path: str, parts: list[tuple[str, list, str]], meter, title: str) -> list[str]:
    """Writes the picture; returns the pitch axis's labels, bottom to top."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.patches import Rectangle

    fig, ax = plt.subplots(figsize=(11, 4), dpi=110)
    lo, hi, end = 127, 0, 0
    for label, notes, colour in parts:
        for n in notes:
            ax.add_patch(Rectangle((n.start / 24, n.pitch - 0.4), (n.end - n.start) / 24, 0.8, color=colour,
                                   alpha=0.85, lw=0))
            lo, hi, end = min(lo, n.pitch), max(hi, n.pitch), max(end, n.end)
        ax.plot([], [], color=colour, lw=6, label=f"{label} ({len(notes)} notes)")
    if lo > hi:  # no notes at all: show middle C's octave
        lo, hi = 60, 72
    bar_axis(ax, end, meter)
    ax.set_xlim(0, end / 24 + 0.5)
    ax.set_ylim(lo - 2, hi + 2)
    ticks = pitch_ticks(lo - 1, hi + 1)
    labels = [note_name(p) for p in ticks]
    ax.set_yticks(ticks, labels)
    for p in ticks:
        if p % 12 == 0:
            ax.axhline(p, color="#ddd", lw=0.5, zorder=0)
    ax.set_ylabel("pitch")
    ax.set_title(title)
    ax.legend(loc="upper right")
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
    return labels


def piano_rolls_png(path: str, rows: list[tuple[str, list, str]], meter, title: str) -> None:
    """One piano roll per row, stacked on a shared time axis and a shared pitch range (note names)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.patches import Rectangle

    notes_all = [n for _, notes, _ in rows for n in notes]
    lo = min((n.pitch for n in notes_all), default=60)
    hi = max((n.pitch for n in notes_all), default=72)
    end = max((n.end for n in notes_all), default=meter.ticks_per_bar)
    fig, axes = plt.subplots(len(rows), 1, figsize=(11, 1.6 + 1.5 * len(rows)), dpi=110, sharex=True)
    ticks = pitch_ticks(lo - 1, hi + 1)
    for ax, (label, notes, colour) in zip(axes, rows):
        for n in notes:
            ax.add_patch(Rectangle((n.start / 24, n.pitch - 0.4), (n.end - n.start) / 24, 0.8, color=colour,
                                   alpha=0.9, lw=0))
        bar_axis(ax, end, meter)
        ax.set_ylim(lo - 1.5, hi + 1.5)
        ax.set_yticks(ticks, [note_name(p) for p in ticks], fontsize=7)
        ax.set_ylabel(label, rotation=0, ha="right", va="center", fontsize=9)
    axes[-1].set_xlim(0, end / 24 + 0.5)
    axes[0].set_title(title)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
