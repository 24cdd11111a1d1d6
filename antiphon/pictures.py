"""Piano rolls of notes as PNG pictures (matplotlib, no display needed): the demo's and the benchmarks'."""
from __future__ import annotations


def piano_roll_png(path: str, parts: list[tuple[str, list, str]], meter, title: str) -> None:
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
    beats_per_bar = meter.ticks_per_bar / 24
    for b in range(0, int(end / 24 / beats_per_bar) + 2):
        ax.axvline(b * beats_per_bar, color="#999", lw=0.6)
    ax.set_xlim(0, end / 24 + 0.5)
    ax.set_ylim(lo - 2, hi + 2)
    ax.set_xlabel("quarter notes")
    ax.set_ylabel("MIDI pitch")
    ax.set_title(title)
    ax.legend(loc="upper right")
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
