"""Runs are never clobbered: one writer per folder, --resume or --overwrite for a folder that
holds a run, and every write of a run failing (disk full, permissions) as one line, exit 1,
with the files already there intact."""

import errno
import json
import os
import subprocess
import sys
import time

import pytest

from sentvae.checkpoint import load_checkpoint
from conftest import ROOT, run_cli

TINY = ["--emb-dim", "32", "--hidden", "32", "--latent", "8", "--max-tokens", "400",
        "--log-every", "2", "--anneal-steps", "20", "--model-type", "word"]


def _train(ck, corpus_dir, *more):
    return ["train", "--data", corpus_dir / "train.txt", "--valid", corpus_dir / "valid.txt",
            "--out", ck, *TINY, *more]


@pytest.fixture
def finished_run(tmp_path, corpus_dir, monkeypatch, capsys):
    ck = tmp_path / "ck"
    code, _, err = run_cli(_train(ck, corpus_dir, "--max-steps", "4", "--eval-every", "2"), monkeypatch, capsys)
    assert code == 0, err
    return ck, {n: (ck / n).read_bytes() for n in ("last.pt", "best.pt", "tokenizer.model", "metrics.jsonl")}


def test_a_second_writer_is_refused_with_the_holders_pid(tmp_path, corpus_dir, monkeypatch, capsys):
    ck = tmp_path / "ck"
    p = subprocess.Popen([sys.executable, "-m", "sentvae", *map(str, _train(ck, corpus_dir, "--max-steps", "100000",
                                                                            "--epochs", "0"))],
                         cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.time() + 90
        while time.time() < deadline and not (ck / "metrics.jsonl").exists():
            time.sleep(0.1)
        assert (ck / "metrics.jsonl").exists(), "training never started"
        for more in ([], ["--resume"], ["--overwrite"]):
            code, stdout, err = run_cli(_train(ck, corpus_dir, "--max-steps", "2", *more), monkeypatch, capsys)
            assert code == 2, (more, err)
            assert f"(pid {p.pid})" in err and str(ck) in err and len(err.strip().splitlines()) == 1
        assert p.poll() is None                     # the first run goes on, untouched
    finally:
        p.kill()
        p.wait()
    # the kernel dropped the dead writer's lock: the folder can be resumed at once
    code, _, err = run_cli(_train(ck, corpus_dir, "--resume", "--max-steps", "2"), monkeypatch, capsys)
    assert code == 0 or "already" not in err


def test_training_into_a_finished_run_needs_resume_or_overwrite(finished_run, corpus_dir, monkeypatch, capsys):
    ck, before = finished_run
    code, stdout, err = run_cli(_train(ck, corpus_dir, "--max-steps", "4"), monkeypatch, capsys)
    assert code == 2 and "already holds a run" in err and "--resume" in err and "--overwrite" in err
    assert len(err.strip().splitlines()) == 1
    assert {n: (ck / n).read_bytes() for n in before} == before         # nothing touched
    code, _, err = run_cli(_train(ck, corpus_dir, "--resume", "--overwrite"), monkeypatch, capsys)
    assert code == 2 and "--overwrite" in err
    # --overwrite replaces the run: a new metrics.jsonl, checkpoints of the new run only
    code, _, err = run_cli(_train(ck, corpus_dir, "--max-steps", "3", "--eval-every", "3", "--seed", "5",
                                  "--overwrite"), monkeypatch, capsys)
    assert code == 0, err
    rows = [json.loads(x) for x in (ck / "metrics.jsonl").read_text().splitlines()]
    assert rows[-1]["step"] == 3 and all(r["step"] <= 3 for r in rows)
    assert load_checkpoint(ck / "best.pt")["train_config"]["seed"] == 5


def _fail_writes(after_bytes: int):
    """An `open` whose files accept `after_bytes` bytes of writes, then raise ENOSPC."""
    real_open = open

    class Full:
        def __init__(self, f):
            self.f, self.left = f, after_bytes

        def write(self, data):
            if len(data) > self.left:
                self.f.write(data[:max(self.left, 0)])
                self.f.flush()
                self.left = 0
                raise OSError(errno.ENOSPC, "No space left on device")
            self.left -= len(data)
            return self.f.write(data)

        def __getattr__(self, name):
            return getattr(self.f, name)

        def __enter__(self):
            return self

        def __exit__(self, *exc):
            self.f.close()

    def fake_open(path, mode="r", *a, **k):
        f = real_open(path, mode, *a, **k)
        return Full(f) if any(c in mode for c in "wa") else f

    return fake_open


def test_disk_full_while_appending_metrics(finished_run, corpus_dir, monkeypatch, capsys):
    import sentvae.rundir
    ck, before = finished_run
    monkeypatch.setattr(sentvae.rundir, "open", _fail_writes(150), raising=False)
    code, stdout, err = run_cli(_train(ck, corpus_dir, "--resume", "--max-steps", "40", "--eval-every", "40", "-q"),
                                monkeypatch, capsys)
    assert code == 1, err
    assert "metrics.jsonl: cannot write (No space left on device)" in err
    assert len(err.strip().splitlines()) == 1 and "Traceback" not in err
    for name in ("last.pt", "best.pt", "tokenizer.model", "metrics.jsonl"):   # cut back to whole lines
        assert (ck / name).read_bytes() == before[name], name
    assert not list(ck.glob(".*.tmp*"))


def test_disk_full_while_writing_the_tokenizer(finished_run, corpus_dir, monkeypatch, capsys):
    import sentvae.atomic
    ck, before = finished_run
    monkeypatch.setattr(sentvae.atomic, "open", _fail_writes(100), raising=False)
    code, stdout, err = run_cli(_train(ck, corpus_dir, "--max-steps", "4", "--overwrite", "-q"), monkeypatch, capsys)
    assert code == 1, err
    assert "tokenizer.model: cannot write (No space left on device)" in err
    assert len(err.strip().splitlines()) == 1
    for name in before:                                # the old run is still whole
        assert (ck / name).read_bytes() == before[name], name
    assert not list(ck.glob(".*.tmp*"))


def test_a_run_folder_without_write_permission_is_one_line(finished_run, corpus_dir, monkeypatch, capsys):
    """EACCES on the folder (simulated: the tests run as root, whom chmod does not stop)."""
    import sentvae.rundir
    ck, before = finished_run
    real_open = os.open

    def denied(path, flags, *a, **k):
        if str(path).startswith(str(ck)) and flags & os.O_CREAT:
            raise PermissionError(errno.EACCES, "Permission denied")
        return real_open(path, flags, *a, **k)

    monkeypatch.setattr(sentvae.rundir.os, "open", denied)
    code, stdout, err = run_cli(_train(ck, corpus_dir, "--resume", "--max-steps", "8", "-q"), monkeypatch, capsys)
    assert code == 1 and len(err.strip().splitlines()) == 1 and str(ck) in err and "Permission denied" in err
    assert {n: (ck / n).read_bytes() for n in before} == before


def test_overwrite_removes_the_old_checkpoints_when_the_new_run_starts(finished_run, corpus_dir):
    from sentvae.api import train
    ck, before = finished_run
    seen = {}

    def at_start(kind, info):
        if kind == "start":
            seen.update({n: (ck / n).exists() for n in ("last.pt", "best.pt")})
            seen["metrics"] = (ck / "metrics.jsonl").read_text()

    train(data=corpus_dir / "train.txt", valid=corpus_dir / "valid.txt", out=ck, overwrite=True, model_type="word",
          emb_dim=32, hidden=32, latent=8, max_tokens=400, max_steps=2, eval_every=2, on_event=at_start)
    assert seen == {"last.pt": False, "best.pt": False, "metrics": ""}   # never a mix of two runs


# --- nothing written before a run is known to start: a failure before its first last.pt leaves
# the folder as it was found (the run it was to replace kept byte for byte, a new folder removed)

def _snapshot(folder):
    """Every file under folder (hidden ones and .lock included), by relative path -> bytes."""
    if not folder.exists():
        return None
    return {str(p.relative_to(folder)): p.read_bytes() if p.is_file() else "dir" for p in sorted(folder.rglob("*"))}


def _poison_loss(monkeypatch, from_step=0):
    """Training whose loss turns non-finite (as --lr inf or --beta inf would make it), without
    depending on which option values are refused up front."""
    import sentvae.trainer
    real = sentvae.trainer.train_step
    calls = []

    def nan_step(*a, **k):
        figs = real(*a, **k)
        calls.append(1)
        if len(calls) > from_step:
            figs["loss"] = figs["loss"] * float("nan")
        return figs

    monkeypatch.setattr(sentvae.trainer, "train_step", nan_step)


def _fail_in(monkeypatch, exc):
    """Training that raises exc at its third step (a crash, or a second Ctrl-C)."""
    import sentvae.trainer
    real = sentvae.trainer.Trainer.step

    def step(self, batches):
        if self.pos.step == 2:
            raise exc
        return real(self, batches)

    monkeypatch.setattr(sentvae.trainer.Trainer, "step", step)


FAILURES = ["non-finite", "crash", "second-ctrl-c", "fp16-on-cpu", "tokenizer-disk-full"]


def _fail(how, ck, corpus_dir, monkeypatch, capsys, *more):
    """Run `sentvae train` into ck failing `how` before its first checkpoint: -> (exit code, stderr)."""
    import sentvae.atomic
    extra = ["--max-steps", "6", "--eval-every", "4", *more]
    if how == "non-finite":
        _poison_loss(monkeypatch)
    elif how == "crash":
        _fail_in(monkeypatch, RuntimeError("boom"))
    elif how == "second-ctrl-c":
        _fail_in(monkeypatch, KeyboardInterrupt())
    elif how == "fp16-on-cpu":
        extra += ["--precision", "fp16", "--device", "cpu"]
    else:
        monkeypatch.setattr(sentvae.atomic, "open", _fail_writes(100), raising=False)
    if how == "crash":
        with pytest.raises(RuntimeError, match="boom"):
            run_cli(_train(ck, corpus_dir, *extra, "-q"), monkeypatch, capsys)
        return 1, ""
    code, _, err = run_cli(_train(ck, corpus_dir, *extra, "-q"), monkeypatch, capsys)
    return code, err


@pytest.mark.parametrize("how", FAILURES)
def test_a_run_failing_before_its_first_checkpoint_leaves_the_run_it_replaces_byte_for_byte(
        how, finished_run, corpus_dir, monkeypatch, capsys):
    ck, _ = finished_run
    (ck / ".lock").write_text("12345\n")           # the pid of the process that trained it
    before = _snapshot(ck)
    # another tokenizer than the run's: one written before the failure would show
    code, err = _fail(how, ck, corpus_dir, monkeypatch, capsys, "--overwrite", "--vocab-size", "300")
    assert code == {"non-finite": 1, "crash": 1, "second-ctrl-c": 130, "fp16-on-cpu": 2,
                    "tokenizer-disk-full": 1}[how], err
    assert _snapshot(ck) == before                   # .lock too; no .replaced left behind
    if how in ("non-finite", "tokenizer-disk-full"):
        assert f"{ck} is left as it was" in err and len(err.strip().splitlines()) == 1, err
        assert "kept the last good checkpoint" not in err and "lower --lr" not in err
    # and the folder is a finished run as before: --resume continues it
    monkeypatch.undo()
    code, _, err = run_cli(_train(ck, corpus_dir, "--resume", "--max-steps", "6", "-q"), monkeypatch, capsys)
    assert code == 0, err


@pytest.mark.parametrize("how", FAILURES)
def test_a_new_folder_is_removed_again_when_its_run_fails_before_its_first_checkpoint(
        how, tmp_path, corpus_dir, monkeypatch, capsys):
    ck = tmp_path / "new" / "ck"
    code, err = _fail(how, ck, corpus_dir, monkeypatch, capsys)
    assert code != 0
    assert not (tmp_path / "new").exists(), _snapshot(tmp_path / "new")   # no tokenizer.model, no .lock
    if how == "non-finite":
        assert "nothing was saved" in err and "last.pt" not in err, err
    monkeypatch.undo()
    code, _, err = run_cli(_train(ck, corpus_dir, "--max-steps", "2", "-q"), monkeypatch, capsys)
    assert code == 0, err


def test_a_refused_resume_leaves_the_folder_byte_for_byte(finished_run, corpus_dir, monkeypatch, capsys):
    ck, _ = finished_run
    (ck / ".lock").write_text("12345\n")           # the pid of the process that trained it
    before = _snapshot(ck)
    code, _, err = run_cli(["train", "--data", corpus_dir / "valid.txt", "--out", ck, "--resume", "-q"],
                           monkeypatch, capsys)
    assert code == 2 and "resume with the same --data" in err
    assert _snapshot(ck) == before                    # its .lock too


def test_an_empty_folder_given_is_left_empty(tmp_path, corpus_dir, monkeypatch, capsys):
    ck = tmp_path / "ck"
    ck.mkdir()
    _poison_loss(monkeypatch)
    code, _, err = run_cli(_train(ck, corpus_dir, "--max-steps", "6", "-q"), monkeypatch, capsys)
    assert code == 1 and list(ck.iterdir()) == [], err


def test_a_failure_after_the_first_checkpoint_names_the_checkpoint_kept(tmp_path, corpus_dir, monkeypatch, capsys):
    ck = tmp_path / "ck"
    _poison_loss(monkeypatch, from_step=4)          # last.pt saved at step 4, the loss fails after it
    code, _, err = run_cli(_train(ck, corpus_dir, "--max-steps", "20", "--eval-every", "4", "-q"),
                           monkeypatch, capsys)
    assert code == 1 and f"kept the last good checkpoint {ck / 'last.pt'} (step 4)" in err, err
    assert load_checkpoint(ck / "last.pt")["train_state"]["position"]["step"] == 4
    assert not (ck / ".replaced").exists()


def test_ctrl_c_in_a_new_run_saves_it_and_commits_it(finished_run, corpus_dir, monkeypatch, capsys):
    """A stop request (Ctrl-C, SIGTERM) is not a failure: the new run saves last.pt, and that
    first checkpoint is what lets the run it replaces go."""
    import sentvae.trainer
    ck, before = finished_run
    real = sentvae.trainer.Trainer.step

    def step(self, batches):
        if self.pos.step == 2:
            signal_handler = __import__("signal").getsignal(__import__("signal").SIGINT)
            signal_handler(__import__("signal").SIGINT, None)      # as Ctrl-C would
        return real(self, batches)

    monkeypatch.setattr(sentvae.trainer.Trainer, "step", step)
    code, _, err = run_cli(_train(ck, corpus_dir, "--max-steps", "50", "--eval-every", "40", "--seed", "3",
                                  "--overwrite", "-q"), monkeypatch, capsys)
    assert code == 130 and f"saved {ck / 'last.pt'}" in err, err
    last = load_checkpoint(ck / "last.pt")
    assert last["train_config"]["seed"] == 3 and last["train_state"]["position"]["step"] == 3
    assert not (ck / "best.pt").exists() and not (ck / ".replaced").exists()   # never a mix of two runs


def _lines(path) -> int:
    try:
        return path.read_text().count("\n")
    except FileNotFoundError:            # not yet written, or being moved aside
        return 0


def _kill_while_pending(ck, corpus_dir, *more):
    """Start `sentvae train` into ck, SIGKILL it once it is training (before its first
    checkpoint: validation only every 100000 steps)."""
    p = subprocess.Popen([sys.executable, "-m", "sentvae", *map(str, _train(
        ck, corpus_dir, "--max-steps", "100000", "--epochs", "0", "--eval-every", "100000", "--log-every", "1",
        *more))], cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.time() + 90
        # set aside (the old run's metrics.jsonl gone from ck), then two steps logged
        while time.time() < deadline and p.poll() is None and not (
                (ck / ".replaced" / "moved.json").exists() and _lines(ck / "metrics.jsonl") >= 2):
            time.sleep(0.05)
        assert p.poll() is None, p.stderr.read()
    finally:
        p.kill()
        p.wait()


def test_a_run_killed_before_its_first_checkpoint_is_put_back_by_the_next_run(
        finished_run, corpus_dir, monkeypatch, capsys):
    ck, _ = finished_run
    before = _snapshot(ck)
    _kill_while_pending(ck, corpus_dir, "--overwrite")
    assert sorted(p.name for p in (ck / ".replaced").iterdir()) == sorted(
        ["best.pt", "last.pt", "metrics.jsonl", "tokenizer.model", "moved.json"])
    # reading commands say where the checkpoint is, without touching anything
    code, stdout, err = run_cli(["sample", "-c", ck / "best.pt"], monkeypatch, capsys)
    assert code == 2 and ".replaced" in err and "puts it back" in err and stdout == ""
    # the next `train` into the folder puts the old run back first, says so, then decides
    code, stdout, err = run_cli(_train(ck, corpus_dir, "--max-steps", "2"), monkeypatch, capsys)
    assert code == 2 and "put back the run that a killed `sentvae train` had set aside" in err
    assert "already holds a run" in err and stdout == ""
    after = _snapshot(ck)
    assert {k: v for k, v in after.items() if k != ".lock"} == {k: v for k, v in before.items() if k != ".lock"}


def test_a_new_folder_killed_before_its_first_checkpoint_is_cleaned_by_the_next_run(
        tmp_path, corpus_dir, monkeypatch, capsys):
    ck = tmp_path / "ck"
    _kill_while_pending(ck, corpus_dir)
    assert (ck / "tokenizer.model").exists() and (ck / ".replaced" / "moved.json").exists()
    code, _, err = run_cli(_train(ck, corpus_dir, "--max-steps", "2", "-q"), monkeypatch, capsys)
    assert code == 0 and "removed what a killed `sentvae train` wrote before its first checkpoint" in err, err
    assert load_checkpoint(ck / "last.pt")["train_state"]["position"]["step"] == 2


def test_putting_back_is_safe_to_repeat_after_a_kill_at_any_point(tmp_path, monkeypatch):
    """put_back, killed after each of its moves and run again, and a set-aside killed after
    each of its moves, always end with the old run whole and nothing of the new one."""
    from sentvae import rundir
    # an old run without best.pt (stopped by Ctrl-C before a validation); the new run got as far as one
    old = {n: f"old {n}".encode() for n in ("last.pt", "metrics.jsonl", "tokenizer.model")}
    new = {"tokenizer.model": b"new tok", "metrics.jsonl": b"new rows", "best.pt": b"new best"}
    real_replace = os.replace

    def killed_after(n):
        calls = []

        def replace(a, b):
            if len(calls) == n:
                raise SystemExit("killed")             # stands for SIGKILL: nothing after runs
            calls.append(1)
            return real_replace(a, b)
        return replace

    for phase in ("set-aside", "put-back"):
        for n in range(4):
            d = tmp_path / f"{phase}{n}"
            d.mkdir()
            for name, b in old.items():
                (d / name).write_bytes(b)
            (d / "other.txt").write_bytes(b"the user's")
            run = rundir.RunDir(d, overwrite=True)
            if phase == "set-aside":
                monkeypatch.setattr(rundir.os, "replace", killed_after(n))
                with pytest.raises(SystemExit):
                    run._set_aside()
                    raise SystemExit("done")
                monkeypatch.setattr(rundir.os, "replace", real_replace)
            else:
                run._set_aside()
                for name, b in new.items():
                    (d / name).write_bytes(b)
                monkeypatch.setattr(rundir.os, "replace", killed_after(n))
                with pytest.raises(SystemExit):
                    rundir.put_back(d)
                    raise SystemExit("done")
                monkeypatch.setattr(rundir.os, "replace", real_replace)
            rundir.put_back(d)                          # the next run's recovery
            assert {p.name: p.read_bytes() for p in d.iterdir()} == {**old, "other.txt": b"the user's"}, (phase, n)
