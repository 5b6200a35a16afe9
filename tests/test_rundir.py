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
