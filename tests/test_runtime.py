"""The realtime step equals the training model's forward, token for token."""
import numpy as np
import pytest
import torch

from antiphon.engine.model import EventLSTM, ModelConfig
from antiphon.engine.runtime import StepRuntime


@pytest.mark.parametrize("cfg", [ModelConfig(embed=32, hidden=48, layers=1), ModelConfig(embed=40, hidden=64, layers=3),
                                 ModelConfig(embed=24, hidden=32, layers=2, sounding_input=True),
                                 ModelConfig(embed=24, hidden=32, layers=2, sounding_input=True, interval_head=True),
                                 ModelConfig(embed=24, hidden=32, layers=1, interval_head=True),
                                 ModelConfig(embed=24, hidden=32, layers=2, interval_head=True, interval_roles=True),
                                 ModelConfig(embed=24, hidden=32, layers=2, sounding_input=True, shift_input=True)])
def test_fused_step_matches_batched_forward(cfg):
    from antiphon.engine.events import Note
    from antiphon.engine.tokens import encode_notes

    torch.manual_seed(0)
    model = EventLSTM(cfg).eval()
    rng = np.random.default_rng(0)
    notes = [Note(int(s), int(s + d), int(p), 80) for s, d, p in
             zip(rng.integers(0, 400, 60), rng.integers(1, 48, 60), rng.integers(40, 90, 60))]
    toks, pos = encode_notes(notes)  # a real stream: the sounding input is only defined on one
    tokens = torch.from_numpy(toks[:200].astype(np.int64))[None]
    positions = torch.from_numpy(pos[:200].astype(np.int64))[None]
    with torch.no_grad():
        reference, _ = model(tokens, positions)
    rt = StepRuntime(model)
    state = rt.initial_state()
    for i in range(tokens.shape[1]):
        logits = rt.step(int(tokens[0, i]), int(positions[0, i]), state)
        np.testing.assert_allclose(logits, reference[0, i].numpy(), rtol=1e-4, atol=1e-4)


def test_step_allocates_no_new_state():
    model = EventLSTM(ModelConfig(embed=16, hidden=16, layers=2))
    rt = StepRuntime(model)
    state = rt.initial_state()
    h, c = state.h, state.c
    out1 = rt.step(3, 0, state)
    out2 = rt.step(4, 1, state)
    assert state.h is h and state.c is c and out1 is out2  # in place, one logits buffer


def test_saturated_gates_stay_finite():
    torch.manual_seed(1)
    model = EventLSTM(ModelConfig(embed=16, hidden=16, layers=2))
    with torch.no_grad():
        for p in model.parameters():
            p.mul_(200.0)
    rt = StepRuntime(model)
    state = rt.initial_state()
    with np.errstate(all="raise"):
        for i in range(50):
            assert np.isfinite(rt.step(i % 300, i % 96, state)).all()


def test_weight_drop_masks_recurrent_weights_only_while_training():
    torch.manual_seed(0)
    model = EventLSTM(ModelConfig(embed=16, hidden=32, layers=2, dropout=0.0, weight_drop=0.5))
    tokens = torch.randint(1, 300, (2, 20))
    positions = torch.zeros_like(tokens)
    model.train()
    a, _ = model(tokens, positions)
    b, _ = model(tokens, positions)
    assert not torch.allclose(a, b)  # a fresh mask per batch
    a.sum().backward()
    assert model.lstm.weight_hh_l0.grad is not None and model.lstm.weight_hh_l0.grad.abs().sum() > 0
    model.eval()
    with torch.no_grad():
        c, _ = model(tokens, positions)
        d, _ = model(tokens, positions)
    assert torch.equal(c, d)
    rt = StepRuntime(model)  # the realtime step runs the undropped weights
    state = rt.initial_state()
    for i in range(tokens.shape[1]):
        logits = rt.step(int(tokens[0, i]), 0, state)
    np.testing.assert_allclose(logits, c[0, -1].numpy(), rtol=1e-4, atol=1e-4)


def _chorale_stream(repeats: int):
    """bach/bwv66.6's soprano and bass, played `repeats` times in a row: (tokens, positions)."""
    from music21 import corpus

    from antiphon.engine.events import Note
    from antiphon.engine.tokens import encode_notes
    from antiphon.engine.reading import score_notes

    notes, _ = score_notes(corpus.parse("bach/bwv66.6"))
    span = max(n.end for n in notes) + 24
    return encode_notes([Note(n.start + k * span, n.end + k * span, n.pitch, n.velocity)
                         for k in range(repeats) for n in notes])


def _runtime_log_probs(rt, tokens, positions):
    from antiphon.training.scoring import grammar_masks

    state, masks, out = rt.initial_state(), grammar_masks(tokens), []
    for i in range(len(tokens) - 1):
        logits = np.where(masks[i], rt.step(int(tokens[i]), int(positions[i]), state).astype(np.float64), -np.inf)
        out.append(logits[tokens[i + 1]] - np.logaddexp.reduce(logits[masks[i]]))
    return np.array(out)


def test_memory_step_matches_offline_scoring_across_the_window_and_the_ring():
    from antiphon.engine.memory import ROLLBACK_SLACK, MemoryConfig
    from antiphon.training.scoring import token_log_probs

    torch.manual_seed(0)
    model = EventLSTM(ModelConfig(embed=24, hidden=32, layers=2, sounding_input=True, interval_head=True)).eval()
    memory = MemoryConfig(theta=6.0, mix=0.3, gate=4.0, window=100)
    tokens, positions = _chorale_stream(4)
    assert len(tokens) > memory.window + ROLLBACK_SLACK  # the ring wraps
    offline, _ = token_log_probs(model, tokens, positions, memory=memory)
    np.testing.assert_allclose(_runtime_log_probs(StepRuntime(model, memory), tokens, positions), offline,
                               atol=2e-4)
    plain, _ = token_log_probs(model, tokens, positions)
    assert np.abs(plain - offline).max() > 0.05  # the memory changed the numbers


def test_memory_recalls_a_repeated_phrase():
    from antiphon.engine.memory import MemoryConfig
    from antiphon.training.scoring import token_log_probs

    torch.manual_seed(0)
    model = EventLSTM(ModelConfig(embed=24, hidden=32, layers=1)).eval()
    tokens, positions = _chorale_stream(2)
    half = len(tokens) // 2
    plain, _ = token_log_probs(model, tokens, positions)
    recalled, _ = token_log_probs(model, tokens, positions, memory=MemoryConfig(theta=16.0, mix=0.5))
    print(f"second pass, nats per event: {-plain[half:].mean():.3f} alone, {-recalled[half:].mean():.3f} with memory")
    assert -recalled[half:].mean() < 0.6 * -plain[half:].mean()


def test_memory_checkpoint_restores_the_past_exactly():
    from antiphon.engine.memory import MemoryConfig

    torch.manual_seed(0)
    model = EventLSTM(ModelConfig(embed=24, hidden=32, layers=1)).eval()
    rt = StepRuntime(model, MemoryConfig(theta=8.0, mix=0.4, window=64))
    tokens, positions = _chorale_stream(2)
    a, b = 150, 260
    state = rt.initial_state()
    for i in range(a):
        rt.step(int(tokens[i]), int(positions[i]), state)
    saved = state.checkpoint()
    for i in range(a, b):  # a branch that is then abandoned
        rt.step(int(tokens[(i * 7) % len(tokens)]), 0, state)
    state.copy_from(saved)
    fresh = rt.initial_state()
    for i in range(a):
        rt.step(int(tokens[i]), int(positions[i]), fresh)
    forked = state.copy()
    for i in range(a, b):
        got = rt.step(int(tokens[i]), int(positions[i]), state).copy()
        np.testing.assert_allclose(got, rt.step(int(tokens[i]), int(positions[i]), fresh), atol=1e-5)
    assert forked.trace is not state.trace and forked.length == a - 1
