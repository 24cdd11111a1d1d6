"""Round-trip and grammar properties of the event tokenizer, on real music and on random notes."""
import numpy as np
from hypothesis import given, settings, strategies as st

from antiphon.engine.events import Meter, Note
from antiphon.engine.tokens import (BOS, MAX_SHIFT, TIME_SHIFT, VOCAB_SIZE, Grammar, StreamEncoder, bin_velocity,
                           clean_notes, decode_tokens, encode_notes, transpose_tokens, velocity_bin)


def quantised(notes):
    return sorted(Note(n.start, n.end, n.pitch, bin_velocity(velocity_bin(n.velocity))) for n in clean_notes(notes))


notes_strategy = st.lists(
    st.builds(lambda s, d, p, v: Note(s, s + d, p, v),
              st.integers(0, 2000), st.integers(1, 300), st.integers(0, 127), st.integers(1, 127)),
    max_size=60)


@settings(max_examples=200, deadline=None)
@given(notes_strategy)
def test_encode_decode_round_trip(notes):
    tokens, positions = encode_notes(notes)
    assert tokens[0] == BOS and len(tokens) == len(positions)
    assert decode_tokens(tokens) == quantised(notes)


@settings(max_examples=200, deadline=None)
@given(notes_strategy)
def test_every_encoded_token_is_allowed_by_the_grammar_mask(notes):
    tokens, _ = encode_notes(notes)
    g = Grammar()
    g.apply(tokens[0])
    for tok in tokens[1:]:
        assert g.mask()[tok], f"canonical token {tok} masked"
        g.apply(tok)


@settings(max_examples=100, deadline=None)
@given(notes_strategy)
def test_stream_encoder_matches_offline_encoding(notes):
    """Live events fed one at a time, in arrival order, give exactly the offline tokens."""
    clean = clean_notes(notes)
    events = sorted([(n.end, 0, n.pitch, 0) for n in clean] + [(n.start, 1, n.pitch, n.velocity) for n in clean])
    enc = StreamEncoder(Grammar())
    out = []
    for tick, is_on, pitch, vel in events:
        out += enc.note_on(tick, pitch, vel) if is_on else enc.note_off(tick, pitch)
    out += enc.flush()
    assert out == list(encode_notes(notes)[0][1:])


def test_stream_encoder_keeps_a_same_tick_off_one_tick_later():
    enc = StreamEncoder(Grammar())
    out = enc.note_on(10, 60, 80) + enc.note_off(10, 60) + enc.flush()
    assert decode_tokens([BOS] + out) == [Note(10, 11, 60, bin_velocity(velocity_bin(80)))]


def test_round_trip_on_a_real_chorale():
    from music21 import corpus
    score = corpus.parse("bach/bwv66.6")
    notes = []
    for n in score.flatten().notes:
        for p in n.pitches:
            start = int(round(float(n.offset) * 24))
            notes.append(Note(start, start + max(1, int(round(float(n.quarterLength) * 24))), p.midi, 80))
    tokens, positions = encode_notes(notes, Meter(4, 4))
    assert decode_tokens(tokens) == quantised(notes)
    assert len(tokens) > 200 and positions.max() < 96


def test_mask_forbids_invalid_tokens():
    g = Grammar()
    m = g.mask()
    assert not m[TIME_SHIFT - 128:TIME_SHIFT].any()  # nothing sounds: no note-off
    g.apply(TIME_SHIFT + 4)
    assert not g.mask()[TIME_SHIFT:TIME_SHIFT + MAX_SHIFT].any()  # a short shift is never followed by a shift
    assert m.shape == (VOCAB_SIZE,)


def test_transpose_refuses_to_leave_the_keyboard():
    tokens, _ = encode_notes([Note(0, 24, 120, 80)])
    assert transpose_tokens(tokens, 8) is None
    up = transpose_tokens(tokens, 2)
    assert decode_tokens(up)[0].pitch == 122
    assert np.array_equal(transpose_tokens(tokens, 0), tokens)
