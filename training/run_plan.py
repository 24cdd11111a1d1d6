"""`--preset auto`: a training run sized to the data. A folder below FINE_TUNE_BELOW events is fine-tuned from
the shipped default style, so a few dozen files inherit what the broad default knows and learn what is theirs
(measured on 30 Irish and 30 Essen tunes the default never trained on: trained from scratch they did not beat
the Markov baseline, fine-tuned they did); a larger one trains a model of its own, sized by its events. Batch,
window and epochs give about TARGET_STEPS optimiser steps, stopping early on valid and within the time asked."""
from __future__ import annotations

import math
from dataclasses import dataclass

FINE_TUNE_BELOW = 2_000_000  # train events
TARGET_STEPS = 600
SEQ_LEN = 256
FINE_TUNE_LR = 5e-4
SCRATCH_LR = 2e-3
PATIENCE = 4


@dataclass
class RunPlan:
    init: str | None  # the style fine-tuned from, None: a model of its own
    preset: str
    batch_size: int
    seq_len: int
    epochs: int
    lr: float
    patience: int

    def line(self, events: int, files: int) -> str:
        start = (f"fine-tuning the default style (under {FINE_TUNE_BELOW:,} events; --from scratch trains a model "
                 f"of its own)" if self.init else f"a {self.preset} model of its own")
        return (f"auto: {files} pieces, {events:,} train events: {start}; batches of {self.batch_size} windows of "
                f"{self.seq_len} events, up to {self.epochs} epochs (stopping after {self.patience} without a "
                f"better valid score)")


def plan(events: int, asked_init: str | None = None) -> RunPlan:
    """The run for `events` train events; `asked_init`: --from as given ("scratch", a style, or None)."""
    init = None if asked_init == "scratch" else asked_init or ("default" if events < FINE_TUNE_BELOW else None)
    preset = "small" if events < 5_000_000 else "medium"
    windows = max(1, math.ceil(events / SEQ_LEN))
    batch = int(min(32, max(4, windows // 32)))
    steps_per_epoch = max(1, math.ceil(windows / batch))
    epochs = int(min(200, max(3, math.ceil(TARGET_STEPS / steps_per_epoch))))
    return RunPlan(init, preset, batch, SEQ_LEN, epochs, FINE_TUNE_LR if init else SCRATCH_LR, PATIENCE)
