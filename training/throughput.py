"""Measuring training and prepare throughput: tokens per second of a training step, MIDI files read and
tokenised per second (against music21's parser on the same files)."""
from __future__ import annotations

import os
import tempfile
import time
from pathlib import Path


def bench_train(style, quick: bool) -> dict:
    import torch
    import torch.nn.functional as F

    from antiphon.engine.model import EventLSTM

    torch.set_num_threads(os.cpu_count() or 1)  # training uses every core (the step figures use one)
    model = EventLSTM(style.config).train()
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3)
    x = torch.randint(1, 300, (32, 256))
    pos = torch.randint(0, 96, (32, 256))
    steps = 2 if quick else 5
    t0 = 0.0
    for i in range(steps + 1):
        if i == 1:
            t0 = time.perf_counter()
        logits, _ = model(x, pos)
        loss = F.cross_entropy(logits.reshape(-1, logits.shape[-1]), x.reshape(-1))
        opt.zero_grad()
        loss.backward()
        opt.step()
    return {"train_tokens_per_s": round(steps * x.numel() / (time.perf_counter() - t0), 1),
            "train_threads": torch.get_num_threads()}


def bench_prepare(quick: bool) -> dict:
    """Real chorales from the music21 corpus written as MIDI files, read by prepare's reader and by
    music21's parser."""
    from music21 import converter, corpus

    from antiphon.engine.reading import read_midi
    from antiphon.engine.tokens import encode_notes

    names = ["bach/bwv66.6", "bach/bwv7.7", "bach/bwv10.7", "bach/bwv26.6", "bach/bwv40.8", "bach/bwv57.8"]
    names = names[:3] if quick else names
    with tempfile.TemporaryDirectory() as tmp:
        files = []
        for i, name in enumerate(names):
            path = Path(tmp) / f"{i}.mid"
            corpus.parse(name).write("midi", fp=str(path))
            files.append(path)
        reps = 5 if quick else 20
        t0 = time.perf_counter()
        for _ in range(reps):
            for f in files:
                notes, meter = read_midi(str(f))
                encode_notes(notes, meter)
        ours = reps * len(files) / (time.perf_counter() - t0)
        t0 = time.perf_counter()
        for f in files:
            converter.parse(str(f), forceSource=True)
        theirs = len(files) / (time.perf_counter() - t0)
    return {"prepare_files_per_s": round(ours, 1), "music21_files_per_s": round(theirs, 2),
            "prepare_speedup_vs_music21": round(ours / theirs, 1), "bench_files": len(files)}
