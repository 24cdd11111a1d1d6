"""Nothing lost: `antiphon live --record` killed with SIGKILL leaves a MIDI file that opens, missing at most the
last second, and no note hanging on Antiphon Out (the I/O process releases when its parent dies; the next start
releases again); `antiphon train` killed mid-epoch resumes from its last checkpoint; a damaged checkpoint is
reported, never loaded. Figures print with `pytest -s`."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.reliability import Keyboard, count, hanging, jack_env, tiny_style, wait_until
from tests.test_train import TINY, jsb_small  # noqa: F401  (fixture)

ROOT = Path(__file__).resolve().parent.parent


@pytest.mark.jack
@pytest.mark.slow
def test_sigkill_live_recording_survives_and_no_note_hangs(tmp_path):
    import mido

    from tests.jack import JackServer
    from tests.reliability import start_live, status_state

    style = tiny_style(tmp_path / "tiny.style")
    rec = tmp_path / "take.mid"
    with JackServer(period=256) as jack, jack_env(jack):
        dump = jack.midi_dump("killrec")
        # --out-port: Antiphon sends straight into the recorder, so even the next start's first messages land there
        app, a_in = start_live(jack, style, "--out-port", dump.port, "--record", str(rec))
        keys = Keyboard(jack, a_in, client="killkeys")
        keys.phrase()
        wait_until(lambda: status_state(app) == "answering", 20, "the answer")
        time.sleep(2.0)  # well into the answer (2 bars at 180 BPM: 2.7 s), past a recorder save
        pid = app.popen.pid
        children = {int(c): Path(f"/proc/{c}/cmdline").read_bytes().replace(b"\0", b" ").decode()
                    for c in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()}
        sender_pid = next(c for c, cmd in children.items() if "spawn_main" in cmd)
        os.kill(pid, signal.SIGKILL)  # the engine process only: its sender child must notice alone
        app.popen.wait(5)
        t_kill = time.monotonic()
        child_exit = {}
        for child, cmd in sorted(children.items(), key=lambda c: c[0] != sender_pid):
            name = "sender" if child == sender_pid else cmd.split()[-1][:40]
            wait_until(lambda: not Path(f"/proc/{child}").exists() or "zombie" in Path(f"/proc/{child}/status").read_text(),
                       10, f"process {child} to exit")
            child_exit[name] = round(time.monotonic() - t_kill, 2)
        keys.close()
        time.sleep(0.3)
        # the next start releases every note of its channel before anything else
        app2, _ = start_live(jack, style, "--out-port", dump.port)
        time.sleep(0.5)
        app2.popen.send_signal(signal.SIGINT)
        assert app2.popen.wait(15) == 0, app2.output()[-2000:]
        events = dump.stop()

    # what the dump heard from the killed run: its answer, then the sender's release when the pipe closed
    # (with --out-port each start's release sweep lands in the dump too: 128 note-offs from pitch 0 up)
    sweeps = [i for i, (f, m) in enumerate(events)
              if m == bytes([0x80, 0, 0]) and all(events[i + k][1] == bytes([0x80, k, 0]) for k in range(8))]
    assert len(sweeps) == 2, sweeps
    first_run, second_run = events[sweeps[0] + 130:sweeps[1]], events[sweeps[1]:]
    cc123 = min((f for f, m in first_run if m[0] == 0xB0 and m[1] == 123), default=None)
    sounding_at_kill = hanging([e for e in first_run if cc123 is None or e[0] < cc123], all_notes_off=False)
    c = count(first_run)
    offs2 = sorted(m[1] for _, m in second_run if m[0] == 0x80)
    print(f"\nSIGKILL: first run {c['note_ons']} note-ons, {c['note_offs']} note-offs, CC 123 x{c['cc123']}; "
          f"{len(sounding_at_kill)} sounding when killed, {c['hanging_strict']} left hanging; its children exited "
          f"after (s) {child_exit}; next start sent {len(offs2)} note-offs + CC 123 "
          f"x{sum(1 for _, m in second_run if m[0] == 0xB0 and m[1] == 123)} before anything else")
    assert c["note_ons"] > 0
    # (on this synchronous server the dead engine's JACK client stalls the graph ~5 s before anyone's MIDI moves
    # again, so the release arrives then; test_sender_releases_at_once_when_its_parent_dies measures the default)
    assert child_exit["sender"] < 8.0
    assert not hanging(first_run, all_notes_off=False), sorted(hanging(first_run, all_notes_off=False))
    assert c["cc123"] >= 1
    assert offs2[:128] == list(range(128)) and any(m == bytes([0xB0, 123, 0]) for _, m in second_run)

    # the recording: opens, holds the call and the answer up to at most a second before the kill
    mid = mido.MidiFile(str(rec))
    tracks = {t.name: [m for m in t if m.type == "note_on" and m.velocity > 0] for t in mid.tracks}
    call = tracks.get("call (player)", [])
    answer = tracks.get("answer (Antiphon)", [])
    rate = 48000
    kill_frame = cc123 if cc123 is not None else first_run[-1][0]
    sent_early = [f for f, m in first_run if m[0] == 0x90 and m[2] > 0 and f < kill_frame - 1.0 * rate]
    print(f"recording after SIGKILL: {mid.length:.2f} s, call {len(call)} notes, answer {len(answer)} notes "
          f"({len(sent_early)} answer notes were played more than 1 s before the kill)")
    assert len(call) == 4
    assert len(answer) >= len(sent_early)


_PARENT = """
import sys, time
sys.path.insert(0, {root!r})
from antiphon.plugin.sender_process import IOProcess
if __name__ == "__main__":
    s = IOProcess("jack", release_channels=(0,))
    print("ready", s.pid, s.name, flush=True)
    sys.stdin.readline()
    s.send_now(bytes([0x90, 64, 100]))
    s.send_now(bytes([0x90, 67, 100]))
    print("sent", flush=True)
    time.sleep(60)
"""


@pytest.mark.jack
def test_sender_releases_at_once_when_its_parent_dies(tmp_path):
    """The engine process killed (SIGKILL) on an ordinary (asynchronous) JACK server: its I/O process sees
    the pipe close and releases at once."""
    from tests.jack import JackServer

    script = tmp_path / "parent.py"
    script.write_text(_PARENT.format(root=str(ROOT)))
    with JackServer(period=256) as jack:
        dump = jack.midi_dump("orphanrec")
        p = subprocess.Popen([sys.executable, str(script)], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
                             env=jack.env)
        try:
            _, child, port = p.stdout.readline().split(maxsplit=2)
            jack.connect(port.strip(), dump.port)
            p.stdin.write("go\n")
            p.stdin.flush()
            assert p.stdout.readline().strip() == "sent"
            time.sleep(0.3)
            p.kill()
            p.wait(5)
            t0 = time.monotonic()
            wait_until(lambda: not Path(f"/proc/{child}").exists() or "zombie" in Path(f"/proc/{child}/status").read_text(),
                       10, "the sender process to exit")
            exit_s = time.monotonic() - t0
        finally:
            p.kill()
        time.sleep(0.2)
        events = dump.stop()
    c = count(events)
    print(f"\nparent SIGKILLed: sender exited {exit_s:.3f} s later; the dump got {c['note_ons']} note-ons, "
          f"{c['note_offs']} note-offs, CC 123 x{c['cc123']}")
    assert c["note_ons"] == 2 and not hanging(events, all_notes_off=False) and c["cc123"] == 1
    assert exit_s < 1.0


@pytest.mark.jack
def test_sender_outlives_a_ctrl_c_to_the_process_group_and_panics_through_it():
    """Ctrl-C in a terminal signals the whole process group: the I/O process must stay up so that the
    engine's Panic (note-offs, then CC 123) still goes out through it."""
    from antiphon.plugin.sender_process import IOProcess
    from tests.jack import JackServer, jack_env

    with JackServer(period=256) as jack, jack_env(jack):
        dump = jack.midi_dump("ctrlc_rec")
        s = IOProcess("jack", release_channels=(0,))
        try:
            jack.connect(s.name, dump.port)
            time.sleep(0.2)
            s.send_now(bytes([0x90, 64, 100]))
            wait_until(lambda: s.stats().sounding == 1, 5, "the note to sound")
            for sig in (signal.SIGINT, signal.SIGTERM):
                os.kill(s.pid, sig)
            time.sleep(0.3)
            assert s.alive and s.sounding() == [(0, 64)]
            s.panic()
        finally:
            s.close()
        time.sleep(0.2)
        events = dump.stop()
    c = count(events)
    assert c["note_ons"] == 1 and not hanging(events, all_notes_off=False) and c["cc123"] >= 1
    msgs = [m for _, m in events]
    assert msgs.index(bytes([0x80, 64, 0])) < msgs.index(bytes([0xB0, 123, 0]))  # Panic: note-off, then CC 123


@pytest.fixture(scope="module")
def jsb_medium(tmp_path_factory):
    """150 JSB chorales: a TINY epoch lasts a few seconds, long enough to be killed in the middle of one."""
    from tests.test_train import jsb_subset

    return jsb_subset(tmp_path_factory, 150, 4)


@pytest.mark.slow
def test_training_killed_mid_epoch_resumes(jsb_medium, tmp_path):
    jsb_small = jsb_medium
    out = tmp_path / "k.style"
    ckpt = tmp_path / "k.style.ckpt"
    env = dict(os.environ, OMP_NUM_THREADS="1", PYTHONUNBUFFERED="1")
    cmd = [sys.executable, "-m", "antiphon", "train", jsb_small, "--out", str(out), *TINY]
    log = tmp_path / "train.log"
    with open(log, "w") as f:
        proc = subprocess.Popen([*cmd, "--epochs", "50"], stdout=f, stderr=subprocess.STDOUT, cwd=ROOT, env=env)
    try:
        wait_until(lambda: '"epoch": 1' in log.read_text() or proc.poll() is not None, 240, "epoch 1", poll=0.05)
        t1 = time.monotonic()
        wait_until(lambda: '"epoch": 2' in log.read_text() or proc.poll() is not None, 240, "epoch 2", poll=0.05)
        epoch_s = time.monotonic() - t1
        time.sleep(epoch_s / 2)  # half way through epoch 3
    finally:
        proc.kill()
        proc.wait(10)
    done = [json.loads(line)["epoch"] for line in log.read_text().splitlines() if line.startswith('{"epoch"')]
    assert done, log.read_text()[-2000:]
    r = subprocess.run([*cmd, "--epochs", str(done[-1] + 2), "--resume"], capture_output=True, text=True, cwd=ROOT,
                       env=env, timeout=300)
    import re

    m = re.search(rf"resumed from {re.escape(str(ckpt))} after epoch (\d+)", r.stdout)
    print(f"\ntraining: killed with SIGKILL ~{epoch_s / 2:.1f} s after epoch {done[-1]} was logged ({epoch_s:.1f} s an "
          f"epoch); {m.group(0) if m else r.stdout[-500:]}")
    assert r.returncode == 0, r.stderr[-2000:]
    assert m, r.stdout[-2000:]
    after = int(m.group(1))
    # at most the epoch under way is lost (the checkpoint of the next one may land just before its log line)
    assert done[-1] <= after <= done[-1] + 1
    resumed = [json.loads(line)["epoch"] for line in r.stdout.splitlines() if line.startswith('{"epoch"')]
    assert resumed == list(range(after + 1, done[-1] + 3))
    # Ctrl-C: one line that says which epoch is saved and how to go on
    before = out.read_bytes()
    again = [*cmd, "--epochs", str(done[-1] + 40), "--resume"]
    log2 = tmp_path / "train2.log"
    with open(log2, "w") as f:
        proc = subprocess.Popen(again, stdout=f, stderr=subprocess.PIPE, text=True, cwd=ROOT, env=env)
    try:
        wait_until(lambda: '"epoch": ' in log2.read_text() or proc.poll() is not None, 240, "an epoch", poll=0.05)
        proc.send_signal(signal.SIGINT)
        err = proc.communicate(timeout=60)[1]
    finally:
        proc.kill()
    saved = [json.loads(line)["epoch"] for line in log2.read_text().splitlines() if line.startswith('{"epoch"')]
    line = err.strip().splitlines()[-1]  # after the epoch's progress bar
    print(f"Ctrl-C: exit {proc.returncode}: {line}")
    assert proc.returncode == 130 and line.startswith("antiphon train: stopped (Ctrl-C)"), err[-2000:]
    m = re.search(rf"epoch (\d+) is saved in {re.escape(str(ckpt))}.*To go on: antiphon .*--resume", line)
    assert m and int(m.group(1)) >= saved[0], err
    assert out.read_bytes() == before or f"{out} holds the best one so far" in err


def _checkpoint(jsb, tmp_path) -> Path:
    from antiphon.cli import main as antiphon

    out = tmp_path / "c.style"
    assert antiphon(["train", jsb, "--out", str(out), "--epochs", "1", *TINY]) == 0
    return tmp_path / "c.style.ckpt"


@pytest.mark.slow
def test_damaged_checkpoints_are_reported_not_loaded(jsb_small, tmp_path, capsys):  # noqa: F811
    from antiphon.cli import main as antiphon
    from antiphon.engine.style import pack, unpack

    ckpt = _checkpoint(jsb_small, tmp_path)
    good = ckpt.read_bytes()
    tensors, meta = unpack(good)
    marker = tmp_path / "pwned"
    import pickle

    from tests.test_style import WritesAFile

    cases = {
        "truncated": good[: len(good) // 2],
        "bit-flipped header": good[:8] + good[8:40].replace(b'"', b"'", 1) + good[40:],
        "no history": pack(tensors, {k: v for k, v in meta.items() if k != "history"}),
        "history of wrong type": pack(tensors, dict(meta, history="all good")),
        "epoch of wrong type": pack(tensors, dict(meta, history=dict(meta["history"], epoch="1"))),
        "history with a foreign key": pack(tensors, dict(meta, history=dict(meta["history"], exploit=1))),
        "steps missing": pack(tensors, dict(meta, steps={})),
        "model tensor missing": pack({k: v for k, v in tensors.items() if k != "model.head.bias"}, meta),
        "a style file, not a checkpoint": (tmp_path / "c.style").read_bytes(),
        "pickle": pickle.dumps({"state": WritesAFile(str(marker))}),
    }
    for name, data in cases.items():
        ckpt.write_bytes(data)
        capsys.readouterr()
        rc = antiphon(["train", jsb_small, "--out", str(tmp_path / "c.style"), "--epochs", "2", "--resume", *TINY])
        err = capsys.readouterr().err
        print(f"{name}: exit {rc}: {err.strip()[:160]}", file=sys.__stdout__)
        assert rc == 1, f"{name}: exit {rc}"
        assert "Traceback" not in err and str(ckpt) in err, f"{name}: {err[-500:]}"
    assert not marker.exists()
