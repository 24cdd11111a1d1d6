"""K streams stepped together equal K streams stepped one by one: the batched LSTM step (memory, interval
head, sounding input, ensembles with transposed views) and the vectorised grammar."""
import numpy as np
import pytest
import torch

from antiphon.engine.events import Meter, Note
from antiphon.engine.grammar_batch import GrammarBatch
from antiphon.engine.memory import MemoryConfig
from antiphon.engine.model import EventLSTM, ModelConfig
from antiphon.engine.runtime import StepRuntime
from antiphon.engine.style import load_style
from antiphon.engine.tokens import Grammar, encode_notes


def chorale_prefix(n_tokens: int):
    from antiphon.engine.reading import corpus_score, score_notes

    notes, meter = score_notes(corpus_score("bach/bwv66.6"))
    tokens, positions = encode_notes(notes, meter)
    return tokens[:n_tokens].astype(np.int64), positions[:n_tokens].astype(np.int64), meter


def random_continuations(grammar: Grammar, k: int, steps: int, seed: int) -> list[list[int]]:
    """k different valid token streams continuing `grammar`."""
    rng = np.random.default_rng(seed)
    out = []
    for _ in range(k):
        g = grammar.copy()
        seq = []
        for _ in range(steps):
            allowed = np.flatnonzero(g.mask())
            tok = int(rng.choice(allowed))
            g.apply(tok)
            seq.append(tok)
        out.append(seq)
    return out


def run_both(runtime, prefix_tokens, prefix_positions, meter, k=5, steps=60, stepper=None):
    """Steps K streams one by one and (through `stepper`, default the runtime itself) together."""
    stepper = stepper or runtime
    state = runtime.initial_state()
    grammar = Grammar(meter)
    for tok, pos in zip(prefix_tokens, prefix_positions):
        grammar.apply(int(tok))
        runtime.step(int(tok), int(pos), state)
    seqs = random_continuations(grammar, k, steps, seed=1)
    singles = [state.copy() for _ in range(k)]
    grammars = [grammar.copy() for _ in range(k)]
    batch = stepper.fork(state, k, max_tokens=16)  # smaller than the plan: the buffers must grow
    gb = GrammarBatch(grammar, k)
    for t in range(steps):
        tokens = np.array([s[t] for s in seqs])
        np.testing.assert_array_equal(gb.masks(), np.stack([g.mask() for g in grammars]))
        gb.apply(tokens)
        expected = []
        for i, g in enumerate(grammars):
            g.apply(int(tokens[i]))
            expected.append(np.array(runtime.step(int(tokens[i]), g.position, singles[i])))
        np.testing.assert_array_equal(gb.positions, [g.position for g in grammars])
        got = stepper.step_batch(tokens, gb.positions, batch)
        np.testing.assert_allclose(got, np.stack(expected), rtol=2e-4, atol=2e-4)
    return batch, singles


@pytest.mark.parametrize("cfg", [ModelConfig(embed=32, hidden=48, layers=2),
                                 ModelConfig(embed=24, hidden=32, layers=3, sounding_input=True),
                                 ModelConfig(embed=24, hidden=32, layers=2, sounding_input=True, interval_head=True,
                                             interval_roles=True),
                                 ModelConfig(embed=24, hidden=32, layers=1, interval_head=True)])
@pytest.mark.parametrize("memory", [None, MemoryConfig(theta=8.0, mix=0.3, gate=1.5, window=40)])
def test_k_batched_steps_equal_k_single_steps(cfg, memory):
    torch.manual_seed(0)
    runtime = StepRuntime(EventLSTM(cfg).eval(), memory)
    tokens, positions, meter = chorale_prefix(120)  # past the memory's window: its span slides
    batch, singles = run_both(runtime, tokens, positions, meter)
    for i, single in enumerate(singles):  # a stream taken out of the batch goes on as its single twin
        own = batch.stream(i)
        np.testing.assert_allclose(own.h, single.h, atol=1e-5)
        a = np.array(runtime.step(5, 0, own))
        b = np.array(runtime.step(5, 0, single))
        np.testing.assert_allclose(a, b, rtol=2e-4, atol=2e-4)


def test_batched_memory_mix_keeps_a_finite_score_where_the_models_probability_underflows():
    """Logits thousands of nats apart: exp underflows to 0 for most tokens, the memory has none of them;
    the batched mix (in probabilities) must still give the single step's finite log-space scores."""
    torch.manual_seed(0)
    model = EventLSTM(ModelConfig(embed=24, hidden=32, layers=2)).eval()
    with torch.no_grad():
        model.head.weight.mul_(20000.0)
    runtime = StepRuntime(model, MemoryConfig(theta=8.0, mix=0.5, gate=1.0, window=40))
    tokens, positions, meter = chorale_prefix(60)
    state = runtime.initial_state()
    for tok, pos in zip(tokens, positions):
        runtime.step(int(tok), int(pos), state)
    single = np.array(runtime.step(5, 0, state.copy()))
    batch = runtime.fork(state, 3)
    got = runtime.step_batch(np.array([5, 5, 5]), np.zeros(3, dtype=np.int64), batch)
    assert np.isfinite(single).all() and (single.max() - single.min()) > 1000  # what the test is about
    assert np.isfinite(got).all()
    np.testing.assert_allclose(got, np.repeat(single[None], 3, axis=0), rtol=1e-4, atol=1e-2)


def test_default_style_batched_equals_single():
    style = load_style("default")
    tokens, positions, meter = chorale_prefix(200)
    run_both(style.runtime(), tokens, positions, meter, k=8, steps=40)


def test_ensemble_with_views_batched_equals_single():
    style = load_style("jsb-quarter")  # six members, four models, transposed views, memories
    tokens, positions, meter = chorale_prefix(80)
    run_both(style.runtime(), tokens, positions, meter, k=3, steps=25)


def test_grammar_batch_at_the_keyboard_edges_and_after_velocity():
    g = Grammar(Meter(3, 4))
    for tok in encode_notes([Note(0, 10, 0, 10), Note(0, 30, 127, 120), Note(5, 8, 64, 127)], Meter(3, 4))[0]:
        g.apply(int(tok))
    seqs = random_continuations(g, 6, 200, seed=7)
    gb = GrammarBatch(g, 6)
    singles = [g.copy() for _ in range(6)]
    for t in range(200):
        tokens = np.array([s[t] for s in seqs])
        np.testing.assert_array_equal(gb.masks(), np.stack([x.mask() for x in singles]))
        pitch, velocity = gb.apply(tokens)
        for i, x in enumerate(singles):
            ev = x.apply(int(tokens[i]))
            assert (pitch[i], velocity[i]) == ((ev.pitch, ev.velocity) if ev else (-1, 0))
    for i, x in enumerate(singles):
        y = gb.stream(i)
        assert (y.tick, y.bin, y.last, y._last_on, y._last_off, y._any_on) == \
               (x.tick, x.bin, x.last, x._last_on, x._last_off, x._any_on)
        np.testing.assert_array_equal(y.sounding, x.sounding)


@pytest.mark.parametrize("cfg", [ModelConfig(embed=24, hidden=32, layers=3, sounding_input=True),
                                 ModelConfig(embed=24, hidden=32, layers=2, sounding_input=True, interval_head=True,
                                             interval_roles=True),
                                 ModelConfig(embed=24, hidden=32, layers=1, interval_head=True)])
def test_torch_batched_steps_equal_single_steps(cfg):
    from antiphon.engine.torch_step import batch_stepper

    torch.manual_seed(0)
    runtime = StepRuntime(EventLSTM(cfg).eval(), MemoryConfig(theta=8.0, mix=0.3, gate=1.5, window=40))
    tokens, positions, meter = chorale_prefix(120)
    run_both(runtime, tokens, positions, meter, stepper=batch_stepper(runtime, "cpu"))


def test_torch_batched_default_and_ensemble_equal_single_steps():
    from antiphon.engine.torch_step import batch_stepper

    tokens, positions, meter = chorale_prefix(200)
    for name, k, steps in (("default", 8, 40), ("jsb-quarter", 3, 20)):
        runtime = load_style(name).runtime()
        run_both(runtime, tokens[:120], positions[:120], meter, k=k, steps=steps,
                 stepper=batch_stepper(runtime, "cpu"))


@pytest.mark.parametrize("name", ["default", "jsb-quarter"])
def test_replay_in_one_forward_equals_stepping(name):
    """A style switch hears the recent stream in one forward pass: the same state and logits as stepping
    the tokens one by one (the memory trace included), and the same next steps."""
    from antiphon.engine.tokens import BOS

    runtime = load_style(name).runtime()
    tokens, positions, meter = chorale_prefix(257)
    stream = [BOS] + [int(t) for t in tokens[1:]]
    stepped = runtime.initial_state()
    for tok, pos in zip(stream, positions):
        expected = np.array(runtime.step(tok, int(pos), stepped))
    state, logits = runtime.replay(stream, [int(p) for p in positions])
    np.testing.assert_allclose(np.array(logits), expected, rtol=1e-3, atol=1e-3)
    for t, p in ((300, 5), (70, 5), (30, 6)):  # copies: a runtime returns one buffer it overwrites
        after_replay = np.array(runtime.step(t, p, state))
        after_steps = np.array(runtime.step(t, p, stepped))
        np.testing.assert_allclose(after_replay, after_steps, rtol=1e-3, atol=1e-3)


def test_batch_sampler_draws_each_row_from_its_nucleus():
    """Each row's draw is the inverse CDF, at that row's uniform number, over its top-p nucleus in order of
    probability (ties by token): the same draw whichever tokens every row's mask rules out."""
    from antiphon.engine.sampler import BatchSampler, SamplingParams

    rng = np.random.default_rng(3)
    k, v = 12, 369
    logits = (rng.standard_normal((k, v)) * 3).astype(np.float32)
    logits[:, 40] = logits[:, 41]  # a tie: the lower token comes first
    masks = rng.random((k, v)) < 0.6
    masks[:, 200:300] = False  # ruled out in every row
    masks[:, 40:42] = True
    params = SamplingParams(temperature=0.9, top_p=0.9)
    drawn = BatchSampler(np.random.default_rng(7)).sample(logits, masks, params)
    uniforms = np.random.default_rng(7).random(k)
    for row in range(k):
        allowed = np.flatnonzero(masks[row])
        z = logits[row, allowed].astype(np.float64) / params.temperature
        p = np.exp(z - z.max())
        p /= p.sum()
        order = sorted(range(len(allowed)), key=lambda i: (-p[i], allowed[i]))
        cum, nucleus = 0.0, []
        for i in order:
            if cum >= params.top_p:
                break
            nucleus.append(i)
            cum += p[i]
        target = uniforms[row] * sum(p[i] for i in nucleus)
        running = 0.0
        for i in nucleus:
            running += p[i]
            if running >= target:
                break
        assert drawn[row] == allowed[i], row
