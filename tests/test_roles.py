"""Who plays what: a model with the role input reads each token's player (nobody named, the player, the band),
learnt from pieces of several parts, and the accompaniment feeds its stream with those roles."""
import random

import numpy as np
import pytest
import torch

from antiphon.engine.events import Meter, Note
from antiphon.engine.fake_time import simulate
from antiphon.engine.model import EventLSTM, ModelConfig, player_sounding
from antiphon.engine.runtime import StepRuntime
from antiphon.engine.session import ACCOMPANY, Session, SessionParams
from antiphon.engine.tokens import (NOTE_OFF, NOTE_ON, ROLE_BAND, ROLE_NONE, ROLE_PLAYER, TIME_SHIFT, VELOCITY,
                                    encode_notes, encode_voices)


def _role_model(seed: int = 0, **cfg) -> EventLSTM:
    torch.manual_seed(seed)
    model = EventLSTM(ModelConfig(embed=24, hidden=32, layers=2, role_input=True, **cfg)).eval()
    with torch.no_grad():  # trained rows, not the initial ones: large enough to change every step
        model.role_emb.weight[1:].normal_(0.0, 1.0)
        if model.config.player_input:
            model.player_proj.weight.normal_(0.0, 1.0)
    return model


def _two_parts():
    top = [Note(0, 24, 72, 80), Note(24, 48, 74, 100), Note(48, 96, 76, 80)]
    low = [Note(0, 48, 60, 80), Note(48, 72, 64, 80), Note(72, 96, 72, 80)]  # ends on the top part's pitch
    return top + low, [0] * len(top) + [1] * len(low)


def test_each_note_token_carries_its_part_and_a_velocity_token_its_notes():
    notes, voices = _two_parts()
    tokens, positions, token_voices = encode_voices(notes, voices)
    plain_tokens, plain_positions = encode_notes(notes)
    assert np.array_equal(tokens, plain_tokens) and np.array_equal(positions, plain_positions)
    expected = {(NOTE_ON + 72, 0): 0, (NOTE_ON + 74, 24): 0, (NOTE_ON + 76, 48): 0, (NOTE_ON + 60, 0): 1,
                (NOTE_ON + 64, 48): 1}
    tick = 0
    for i, (tok, voice) in enumerate(zip(tokens, token_voices)):
        if TIME_SHIFT <= tok < VELOCITY:
            tick += int(tok) - TIME_SHIFT + 1
        if (int(tok), tick) in expected:
            assert voice == expected[(int(tok), tick)], (tok, tick)
        if VELOCITY <= tok:  # a velocity change: the part of the note-on it comes before
            assert voice == token_voices[i + 1] and NOTE_ON <= tokens[i + 1] < NOTE_OFF
        if TIME_SHIFT <= tok < VELOCITY or i == 0:
            assert voice == -1
    # the same pitch in both parts: the low part's late 72 is cut where it starts and keeps its own part
    assert token_voices[list(tokens).index(NOTE_OFF + 76)] == 0
    assert sorted(set(token_voices.tolist())) == [-1, 0, 1]
    assert (tokens >= VELOCITY).sum() == 2  # to 100 for the top part's second note, back to 80 after it


@pytest.mark.parametrize("cfg", [{}, {"sounding_input": True, "interval_head": True, "interval_roles": True},
                                 {"player_input": True}])
def test_the_live_step_reads_roles_as_the_training_forward_does(cfg):
    model = _role_model(**cfg)
    rng = np.random.default_rng(0)
    notes = [Note(int(s), int(s + d), int(p), 80) for s, d, p in
             zip(rng.integers(0, 400, 50), rng.integers(1, 48, 50), rng.integers(40, 90, 50))]
    voices = rng.integers(0, 3, len(notes))
    toks, pos, token_voices = encode_voices(notes, voices)
    roles = np.where(token_voices < 0, ROLE_NONE, np.where(token_voices == 0, ROLE_PLAYER, ROLE_BAND))
    t = torch.from_numpy(toks.astype(np.int64))[None]
    p = torch.from_numpy(pos.astype(np.int64))[None]
    heard = player_sounding(toks, roles) if cfg.get("player_input") else None
    with torch.no_grad():
        reference, _ = model(t, p, roles=torch.from_numpy(roles)[None],
                             player=None if heard is None else torch.from_numpy(heard)[None])
        unnamed, _ = model(t, p)
        named_nobody, _ = model(t, p, roles=torch.zeros_like(t))
    torch.testing.assert_close(unnamed, named_nobody)  # ROLE_NONE adds nothing
    assert (reference - unnamed).abs().max() > 0.01  # and the other roles change what it predicts
    rt = StepRuntime(model)
    state = rt.initial_state()
    for i in range(len(toks)):
        gates = None if heard is None else rt.player_gates(np.flatnonzero(heard[i]))
        logits = rt.step(int(toks[i]), int(pos[i]), state, int(roles[i]), gates)
        np.testing.assert_allclose(logits, reference[0, i].numpy(), rtol=1e-4, atol=1e-4)
    if heard is None:  # a style switch replays the recent stream with its roles
        replayed, last = rt.replay(toks.tolist(), pos.tolist(), roles.tolist())
        np.testing.assert_allclose(last, reference[0, -1].numpy(), rtol=1e-4, atol=1e-4)
        np.testing.assert_allclose(replayed.h, state.h, atol=1e-5)


def test_training_windows_name_one_part_the_player_and_the_others_the_band():
    from antiphon.training.train import TrainConfig, batches, chunks

    notes, voices = _two_parts()
    four = notes + [Note(n.start, n.end, n.pitch - 12, 80) for n in notes]
    tokens, positions, token_voices = encode_voices(four, voices + [v + 2 for v in voices])
    windows = chunks([(tokens, positions)] * 40, 10_000, voices=[token_voices] * 40)
    players, unnamed = [], 0
    for x, _, _, _, _, _, roles, _ in batches(windows, TrainConfig(batch_size=1, transpose=0), random.Random(0)):
        if roles is None:
            unnamed += 1
            continue
        r = roles[0].numpy()
        v = token_voices[:len(r)]
        assert (r[v < 0] == ROLE_NONE).all() and (r[v >= 0] != ROLE_NONE).all()
        player = set(v[r == ROLE_PLAYER].tolist())
        assert len(player) == 1 and set(v[r == ROLE_BAND].tolist()) == {0, 1, 2, 3} - player
        players.append(player.pop())
    assert 10 <= unnamed <= 30  # about half the windows name nobody, as a call and its answer are read
    assert players.count(0) > len(players) / 3 and len(set(players)) >= 3  # mostly the top part, not only


def _accompany(model, mode=ACCOMPANY, seed=1):
    from antiphon.engine.reading import corpus_phrase

    melody, meter = corpus_phrase("bach/bwv66.6", 0, 2)
    runtime = StepRuntime(model)
    session = Session(runtime, meter, SessionParams(mode=mode, temperature=0.9), seed=seed)  # states compared within 1e-4
    band = simulate(session, melody, 400)
    return melody, band, session, runtime


def test_the_accompaniment_feeds_the_players_notes_and_its_own_with_their_roles():
    """Every note token the player's line brought into the stream reads ROLE_PLAYER, every one of the band's
    ROLE_BAND, time shifts nobody; the model's state is what the training forward computes from those roles."""
    melody, band, session, runtime = _accompany(_role_model(3))
    assert band, "the accompaniment did not play"
    tokens, roles = list(session.history), list(session.history_roles)
    assert len(tokens) == len(roles) and len(tokens) == session.appended
    tick = 0
    player_ons = {(n.start, n.pitch) for n in melody}
    band_ons = {(n.start, n.pitch) for n in band}
    seen = {ROLE_PLAYER: 0, ROLE_BAND: 0}
    for tok, role in zip(tokens, roles):
        if TIME_SHIFT <= tok < VELOCITY:
            tick += tok - TIME_SHIFT + 1
            assert role == ROLE_NONE
        elif NOTE_ON <= tok < NOTE_OFF:
            seen[role] += 1
            assert (tick, tok - NOTE_ON) in (player_ons if role == ROLE_PLAYER else band_ons)
    assert seen[ROLE_PLAYER] == len(melody) and seen[ROLE_BAND] > 0
    positions, t = [0], 0
    for tok in tokens:
        if TIME_SHIFT <= tok < VELOCITY:
            t += tok - TIME_SHIFT + 1
        positions.append(t % session.meter.ticks_per_bar)
    state, _ = runtime.replay([0] + tokens, positions, [ROLE_NONE] + roles)
    np.testing.assert_allclose(state.h, session.gen.state.h, atol=1e-4)


def test_a_call_and_its_answer_name_nobody():
    *_, session, _ = _accompany(_role_model(3), mode="call_response")
    assert session.answers >= 1 and set(session.history_roles) == {ROLE_NONE}


def test_the_accompaniment_hears_the_players_note_before_its_own_of_the_same_tick():
    """With the player input, every step of the accompaniment's stream reads what the player sounds at its tick,
    the player's note of that tick included though the band's lower notes come first: the stream's state is
    what the training forward computes from model.player_sounding."""
    model = _role_model(5, player_input=True)
    melody, band, session, runtime = _accompany(model)
    assert band
    tokens, roles = [0] + list(session.history), [ROLE_NONE] + list(session.history_roles)
    positions, t = [0], 0
    for tok in tokens[1:]:
        if TIME_SHIFT <= tok < VELOCITY:
            t += tok - TIME_SHIFT + 1
        positions.append(t % session.meter.ticks_per_bar)
    heard = player_sounding(tokens, roles)
    heard[0] = False  # the stream began before the player did
    with torch.no_grad():
        _, (h, _) = model(torch.tensor([tokens]), torch.tensor([positions]), roles=torch.tensor([roles]),
                          player=torch.from_numpy(heard)[None])
    np.testing.assert_allclose(h[:, 0].numpy(), session.gen.state.h, atol=1e-4)
    with torch.no_grad():  # the same weights, deaf to the player's notes, play otherwise
        model.player_proj.weight.zero_()
    assert list(_accompany(model)[2].history) != list(session.history)
