"""No stuck notes, whatever ends a note's life: every note-on Antiphon Out sent reaches its note-off (or a
CC 123 where the path is abrupt) on what a JACK client connected to Antiphon Out actually received.

In-process: LiveEngine on backend 'jack' with a tiny random model, its sender in its own process, a python-rtmidi
keyboard into Antiphon In, jack_midi_dump on Antiphon Out. Each test plays a call, waits until answer notes sound,
ends them some way, and counts the notes left hanging on the dump. Figures print with `pytest -s`."""
from __future__ import annotations

import signal
import time

import pytest

from antiphon.engine.session import ACCOMPANY, CALL_RESPONSE
from tests.jack import JackServer
from tests.reliability import Keyboard, answering, count, hanging, jack_env, make_engine, tiny_style, wait_until

pytestmark = [pytest.mark.jack]


@pytest.fixture(scope="module")
def jack():
    # the default asynchronous server, as users run it (period 256: the dummy driver keeps wall time under load)
    with JackServer(period=256) as server, jack_env(server):
        yield server


class Rig:
    def __init__(self, jack, clock: bool = False, **engine_kw):
        self.jack = jack
        self.engine = make_engine(**engine_kw).start()
        snap = self.engine.snapshot()
        self.a_in, self.a_out = snap.ports
        self.dump = jack.midi_dump(f"rec{id(self) % 10000}")
        jack.connect(self.a_out, self.dump.port)
        self.keys = Keyboard(jack, self.a_in, client=f"keys{id(self) % 10000}")
        self.clock = None
        if clock:
            self.clock = jack.midi_clock(180)
            jack.connect(self.clock.port, self.a_in)
            jack.transport("locate 0")
            time.sleep(0.2)
            jack.transport("play")
            wait_until(lambda: self.engine.clock.source == "midi" and self.engine.clock.running, 10, "MIDI clock lock")

    def call_and_wait_answer(self, notes: int = 1) -> None:
        self.keys.phrase()
        answering(self.engine, notes)

    def finish(self, settle: float = 0.5):
        time.sleep(settle)
        engine_sounding = self.engine.sender.sounding()
        self.engine.close()
        time.sleep(0.3)
        if self.clock is not None:
            self.jack.transport("stop")
            self.clock.stop()
        self.keys.close()
        events = self.dump.stop()
        return events, engine_sounding


def report(name: str, events, extra: str = "") -> dict:
    c = count(events)
    print(f"\n{name}: {c['messages']} messages on Antiphon Out, {c['note_ons']} note-ons, {c['note_offs']} note-offs, "
          f"CC 123 x{c['cc123']}; left hanging: {c['hanging_strict']} without a note-off, {c['hanging']} after CC 123 "
          f"{extra}")
    return c


def _check(events, before_close=None):
    c = count(events)
    assert c["note_ons"] > 0, "no answer notes recorded"
    assert not hanging(events), f"notes left hanging: {sorted(hanging(events))}"
    if before_close is not None:  # the path itself ended them, not the final close()
        assert not hanging(before_close, all_notes_off=False), f"hanging before close: {sorted(hanging(before_close))}"


def _until(events, frame):
    return [e for e in events if e[0] <= frame]


def test_engine_steps_on_one_blas_thread(jack):
    from threadpoolctl import threadpool_info

    rig = Rig(jack)
    blas = [lib for lib in threadpool_info() if lib["user_api"] == "blas"]
    rig.finish(0.0)
    assert blas and all(lib["num_threads"] == 1 for lib in blas), blas


def test_panic_mid_answer(jack):
    rig = Rig(jack)
    rig.call_and_wait_answer(1)
    rig.engine.controls.panic()
    time.sleep(0.3)
    sounding_after = rig.engine.sender.sounding()
    events, _ = rig.finish(0.0)
    report("panic", events, f"(sender says {len(sounding_after)} sounding after Panic)")
    assert sounding_after == []
    _check(events)
    assert count(events)["cc123"] >= 1, "Panic sends CC 123"


@pytest.mark.parametrize("switch", ["style", "mode"])
def test_switch_mid_answer(jack, tmp_path, switch):
    rig = Rig(jack)
    rig.call_and_wait_answer(1)
    if switch == "style":
        rig.engine.controls.set_style(str(tiny_style(tmp_path / "other.style", "other")))
        wait_until(lambda: rig.engine.session._pending_runtime is not None or rig.engine.style_name == "other", 10,
                   "the style loaded")
    else:
        rig.engine.controls.update(mode=ACCOMPANY)
        time.sleep(0.5)
        rig.engine.controls.update(mode=CALL_RESPONSE)
    # the answer ends by itself (2 bars at 180 BPM), then a second call and answer on the new style/mode
    wait_until(lambda: not rig.engine.session.answer_sounding and rig.engine.sender.stats().sounding == 0, 15,
               "the answer to end")
    rig.call_and_wait_answer(1)
    wait_until(lambda: not rig.engine.session.answer_sounding and rig.engine.sender.stats().sounding == 0, 15,
               "the second answer to end")
    events, sounding = rig.finish(0.3)
    report(f"{switch} switch", events, f"(style now {rig.engine.style_name!r})")
    assert not sounding
    assert not hanging(events, all_notes_off=False), sorted(hanging(events, all_notes_off=False))
    if switch == "style":
        assert rig.engine.style_name == "other"


def test_exception_inside_the_engine(jack, monkeypatch):
    rig = Rig(jack)
    rig.call_and_wait_answer(1)
    real = rig.engine.session.advance
    raised = []

    def advance_raising_once(tick, budget_s=None, tick_s=None):
        if not raised:
            raised.append(tick)
            raise RuntimeError("injected fault")
        return real(tick, budget_s, tick_s)

    monkeypatch.setattr(rig.engine.session, "advance", advance_raising_once)
    wait_until(lambda: raised, 5, "the fault")
    time.sleep(0.4)
    errors = rig.engine.snapshot().errors
    sounding_after = rig.engine.sender.sounding()
    alive = [t.name for t in rig.engine._threads if t.is_alive()]
    # the engine goes on: the next call is answered
    rig.call_and_wait_answer(1)
    events, _ = rig.finish(0.0)
    report("exception in advance()", events, f"(errors {errors}, sounding after the fault {sounding_after})")
    assert any("injected fault" in e for e in errors)
    assert "antiphon-engine" in alive
    _check(events)


def test_output_disconnected_and_reconnected_mid_answer(jack):
    rig = Rig(jack)
    rig.call_and_wait_answer(1)
    r = jack.run("jack_disconnect", rig.a_out, rig.dump.port)
    assert r.returncode == 0, r.stderr
    # while disconnected the sounding note's note-off (and more) goes nowhere
    lost = wait_until(lambda: not rig.engine.session.answer_sounding and rig.engine.sender.sounding() == []
                      and rig.engine.sender.stats().sent, 15, "the answer to end while disconnected")
    jack.connect(rig.a_out, rig.dump.port)
    time.sleep(0.6)
    assert rig.engine.sender.sounding() == []
    events, _ = rig.finish(0.0)
    # close() with nothing sounding sends only CC 64 + CC 123: everything before them came from the answer
    close_frame = min(f for f, m in events if m[0] & 0xF0 == 0xB0 and m[1] == 123)
    before = [e for e in events if e[0] < close_frame]
    c = report("output port disconnected mid-answer, reconnected after it", events,
               f"(before close(): {len(hanging(before, all_notes_off=False))} hanging; the sender had sent {lost} "
               f"messages when it was reconnected)")
    assert c["note_ons"] > 0
    # the synth that was cut off gets the note-offs it missed as soon as it is connected again
    assert not hanging(before, all_notes_off=False), f"hanging after reconnect: {sorted(hanging(before))}"
    assert not hanging(events)


# ---- MIDI clock paths ----------------------------------------------------------------------------------------
def test_transport_stop_mid_answer(jack):
    rig = Rig(jack, clock=True)
    rig.call_and_wait_answer(1)
    jack.transport("stop")
    time.sleep(0.6)
    sounding = rig.engine.sender.sounding()
    events, _ = rig.finish(0.0)
    report("transport Stop", events, f"(sender sounding after Stop: {sounding})")
    assert sounding == []
    assert not hanging(events, all_notes_off=False)


@pytest.mark.parametrize("target", ["0", "96000"], ids=["to-0-Start", "to-2s-Stop-Continue"])
def test_locate_while_rolling_mid_answer(jack, target):
    """jack_midi_clock turns a locate while rolling into Start (to 0) or Stop + Continue in the same period
    (elsewhere): the engine may never see the transport stopped, yet the song position jumped."""
    rig = Rig(jack, clock=True)
    rig.call_and_wait_answer(1)
    before = rig.engine.sender.sounding()
    jack.transport(f"locate {target}")
    time.sleep(0.6)
    sounding = rig.engine.sender.sounding()
    state = rig.engine.session.state
    events, _ = rig.finish(0.0)
    report(f"locate {target} while rolling", events,
           f"(sounding before {before}, 0.6 s after {sounding}; session {state})")
    assert before and sounding == [], "the locate must release the answer's notes"
    assert not hanging(events, all_notes_off=False)


def test_clock_vanishes_without_stop(jack):
    rig = Rig(jack, clock=True)
    rig.call_and_wait_answer(1)
    rig.clock.popen.send_signal(signal.SIGKILL)  # no Stop message, no closed client: ticks just stop
    rig.clock.popen.wait(5)
    t0 = time.monotonic()
    wait_until(lambda: not rig.engine.clock.running, 3, "the follower to notice")
    noticed = time.monotonic() - t0
    # the release goes out in JACK's next cycles; a client killed without closing holds the server's
    # cycles up until the server has evicted it (measured 0.3-1 s on the asynchronous server here)
    try:
        wait_until(lambda: rig.engine.sender.sounding() == [], 3, "the answer's notes released")
    finally:
        released = time.monotonic() - t0
        sounding = rig.engine.sender.sounding()
        rig.clock = None
        events, _ = rig.finish(0.0)
    report("clock killed (no Stop)", events, f"(follower stopped after {noticed:.2f} s; every note released "
                                             f"{released:.2f} s after the kill; sounding then {sounding})")
    assert sounding == []
    assert not hanging(events, all_notes_off=False)


# ---- `antiphon live` as a process ----------------------------------------------------------------------------
@pytest.fixture(scope="module")
def style_file(tmp_path_factory):
    return tiny_style(tmp_path_factory.mktemp("style") / "tiny.style")


@pytest.mark.slow
@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])
def test_signal_mid_answer(jack, style_file, sig):
    from tests.jack import find_port
    from tests.reliability import start_live, status_state

    app, a_in = start_live(jack, style_file)
    a_out = find_port(jack, ":Antiphon Out")
    dump = jack.midi_dump(f"sigrec{int(sig)}")
    jack.connect(a_out, dump.port)
    keys = Keyboard(jack, a_in, client=f"sigkeys{int(sig)}")
    keys.phrase()
    wait_until(lambda: status_state(app) == "answering", 20, "the answer")
    time.sleep(0.4)
    app.popen.send_signal(sig)
    rc = app.popen.wait(15)
    keys.close()
    events = dump.stop()
    log = app.output()
    first_cc123 = min((f for f, m in events if m[0] == 0xB0 and m[1] == 123), default=None)
    at_signal = hanging([e for e in events if first_cc123 is None or e[0] < first_cc123], all_notes_off=False)
    report(f"{sig.name} to antiphon live", events, f"(exit {rc}; {len(at_signal)} sounding when it stopped; "
                                                     f"{log.strip().splitlines()[-1]})")
    assert rc == 0, log[-2000:]
    assert count(events)["note_ons"] > 0
    assert not hanging(events, all_notes_off=False), sorted(hanging(events, all_notes_off=False))
    assert count(events)["cc123"] >= 1
    assert "0 notes left sounding" in log
