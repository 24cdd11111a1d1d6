"""The realtime step equals the training model's forward, token for token."""
import numpy as np
import pytest
import torch

from engine.model import EventLSTM, ModelConfig
from engine.runtime import StepRuntime


@pytest.mark.parametrize("cfg", [ModelConfig(embed=32, hidden=48, layers=1), ModelConfig(embed=40, hidden=64, layers=3),
                                 ModelConfig(embed=24, hidden=32, layers=2, sounding_input=True),
                                 ModelConfig(embed=24, hidden=32, layers=2, sounding_input=True, interval_head=True),
                                 ModelConfig(embed=24, hidden=32, layers=1, interval_head=True),
                                 ModelConfig(embed=24, hidden=32, layers=2, interval_head=True, interval_roles=True)])
def test_fused_step_matches_batched_forward(cfg):
    from engine.events import Note
    from engine.tokens import encode_notes

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
