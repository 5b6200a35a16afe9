"""Failure behaviour: kills, signals, disk faults, unsafe files, bad text, streaming."""

import json
import os
import random
import signal
import subprocess
import sys
import time

import pytest
import torch

from sentvae.checkpoint import load_checkpoint
from conftest import BUNDLED, ROOT, run_cli

TINY = ["--emb-dim", "32", "--hidden", "32", "--latent", "8", "--max-tokens", "400",
        "--log-every", "5", "--anneal-steps", "20", "--model-type", "word"]

# Runs `sentvae` with torch.save slowed down (writes in small pieces with pauses), so that
# kills land inside checkpoint writes; the library itself has no test hooks.
SLOW_WRITER = """
import sys, time, torch
real_save = torch.save
class Slow:
    def __init__(self, f): self.f = f
    def write(self, b):
        for i in range(0, len(b), 16384):
            self.f.write(b[i:i + 16384]); self.f.flush(); time.sleep(0.002)
        return len(b)
    def __getattr__(self, name): return getattr(self.f, name)
torch.save = lambda obj, f, *a, **k: real_save(obj, Slow(f), *a, **k)
from sentvae.cli import main
sys.argv = ["sentvae"] + sys.argv[1:]
main()
"""


@pytest.mark.slow
def test_sigkill_at_random_moments_never_breaks_last_pt(tmp_path, corpus_dir):
    ck = tmp_path / "ck"
    rng = random.Random(0)
    mid_write, killed_pids = 0, []
    for attempt in range(14):
        # killed during its very first write, a run has no last.pt to resume: start it afresh
        resume = ["--resume"] if (ck / "last.pt").exists() else ["--overwrite"]
        p = subprocess.Popen([sys.executable, "-c", SLOW_WRITER, "train", "--data", str(corpus_dir / "train.txt"),
                              "--out", str(ck), "--max-steps", "100000", "--epochs", "0", "--eval-every", "3", *TINY, *resume],
                             cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        # wait until THIS process is writing a checkpoint (its temporary file carries its pid; a
        # stale one left by an earlier kill does not count), then kill at a random moment
        mine = ck / f".last.pt.tmp{p.pid}"
        deadline = time.time() + 60
        while time.time() < deadline and not mine.exists() and p.poll() is None:
            time.sleep(0.005)
        assert mine.exists(), p.stderr.read()[-500:] if p.poll() is not None else "no checkpoint write began"
        time.sleep(rng.uniform(0.0, 0.6))       # writes take most of the time: many kills land in one
        p.send_signal(signal.SIGKILL)
        p.wait()
        assert p.returncode == -signal.SIGKILL, p.stderr.read()[-500:]   # it was training, not done
        mid_write += mine.exists()               # the writer renames its temp away: still there = killed mid-write
        killed_pids.append(p.pid)
        if (ck / "last.pt").exists():            # after every kill, last.pt is whole
            assert load_checkpoint(ck / "last.pt")["train_state"]["position"]["step"] > 0
    assert mid_write >= 7, f"only {mid_write} of 14 kills landed inside a checkpoint write"
    # each new run swept the temporary files its killed predecessors left
    left = {int(t.name.rsplit("tmp", 1)[1]) for t in ck.glob(".*.tmp*")}
    assert left <= {killed_pids[-1]}


def test_sigterm_saves_and_exits_130(tmp_path, corpus_dir):
    ck = tmp_path / "ck"
    p = subprocess.Popen([sys.executable, "-m", "sentvae", "train", "--data", str(corpus_dir / "train.txt"),
                          "--out", str(ck), "--max-steps", "100000", "--epochs", "0", *TINY],
                         cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.time() + 90
    while time.time() < deadline and not (ck / "metrics.jsonl").exists():
        time.sleep(0.1)
    time.sleep(0.5)
    p.send_signal(signal.SIGTERM)
    out, err = p.communicate(timeout=60)
    assert p.returncode == 130 and "interrupted at step" in err
    assert load_checkpoint(ck / "last.pt")["train_state"]["position"]["step"] > 0


def test_disk_full_keeps_previous_checkpoints_and_exits_1(trained, tmp_path, corpus_dir, monkeypatch, capsys):
    out, _ = trained
    ck = tmp_path / "ck"
    ck.mkdir()
    for name in ("last.pt", "best.pt", "tokenizer.model"):
        (ck / name).write_bytes((out / name).read_bytes() if name != "tokenizer.model" else
                                load_checkpoint(out / "last.pt")["tokenizer"])
    before = {p.name: p.read_bytes() for p in ck.iterdir()}

    def full(obj, f, *a, **k):
        f.write(b"x" * 100)
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(torch, "save", full)
    code, stdout, err = run_cli(["train", "--resume", "--data", corpus_dir / "train.txt", "--valid",
                                 corpus_dir / "valid.txt", "--out", ck, "--max-steps", "70"], monkeypatch, capsys)
    assert code == 1
    assert "No space left on device" in err and "unchanged" in err and "Traceback" not in err
    for name in ("last.pt", "best.pt", "tokenizer.model"):
        assert (ck / name).read_bytes() == before[name]
    assert not list(ck.glob(".*.tmp*"))


def test_an_output_folder_below_a_file_is_a_bad_out_exit_2(tmp_path, corpus_dir, monkeypatch, capsys):
    blocker = tmp_path / "file"
    blocker.write_text("x")                           # a file where the folder should be: a bad --out
    code, stdout, err = run_cli(["train", "--data", corpus_dir / "train.txt", "--out", blocker / "ck", *TINY],
                                monkeypatch, capsys)
    assert code == 2 and f"--out {blocker / 'ck'}: " in err and str(blocker) in err and len(err.strip().splitlines()) == 1
    assert blocker.read_text() == "x"


class _Payload:
    def __reduce__(self):
        return (os.system, ("touch " + os.environ.get("SENTVAE_MARK", "/nonexistent/x"),))


@pytest.mark.parametrize("kind", ["pickle", "random", "empty", "truncated", "newer", "foreign", "tokenizer"])
def test_unsafe_or_foreign_checkpoints_are_refused_by_every_command(kind, trained, tmp_path, monkeypatch, capsys):
    out, _ = trained
    mark = tmp_path / "ran"
    monkeypatch.setenv("SENTVAE_MARK", str(mark))
    f = tmp_path / "x.pt"
    good = load_checkpoint(out / "best.pt")
    if kind == "pickle":
        torch.save({**good, "extra": _Payload()}, f)
    elif kind == "random":
        f.write_bytes(random.Random(1).randbytes(5000))
    elif kind == "empty":
        f.write_bytes(b"")
    elif kind == "truncated":
        f.write_bytes((out / "best.pt").read_bytes()[:3000])
    elif kind == "newer":
        torch.save({**good, "version": 99}, f)
    elif kind == "foreign":
        torch.save({"state_dict": good["model"]}, f)
    else:
        torch.save({**good, "tokenizer": b"not a sentencepiece model"}, f)
    codes = json.dumps({"z": [0.0] * good["model_config"]["latent"]}) + "\n"
    for args in (["sample"], ["eval", "-k", "2"], ["info", f], ["reconstruct", "a dog ."], ["encode", "a dog ."],
                 ["interpolate", "a dog .", "a cat ."], ["decode"]):
        argv = args if args[0] == "info" else [*args, "-c", f]
        code, stdout, err = run_cli(argv, monkeypatch, capsys, stdin=codes if args == ["decode"] else None)
        assert code == 2 and str(f) in err and len(err.strip().splitlines()) == 1, (kind, args, err)
        assert stdout == ""
    # and resuming from it: the run folder's last.pt is that file
    run = tmp_path / "run"
    run.mkdir()
    f.replace(run / "last.pt")
    code, stdout, err = run_cli(["train", "--resume", "--out", run, "--data", BUNDLED / "valid.txt", "-q"],
                                monkeypatch, capsys)
    assert code == 2 and str(run / "last.pt") in err and len(err.strip().splitlines()) == 1, (kind, err)
    assert not mark.exists()                           # the payload never ran


@pytest.mark.parametrize("content,needle", [
    (None, "no such file"),
    ("DIR", "is a directory"),
    (b"", "empty"),
    (b"\n \n\t\n", "empty"),
    (b"the dog ran .\nthe \xff cat .\n", "line 2: not valid UTF-8"),
    (b"the dog\x00 ran .\n", "line 1: contains a NUL byte"),
])
@pytest.mark.parametrize("command", ["train", "tokenize", "eval", "reconstruct", "encode"])
def test_bad_text_input_for_every_reader(command, content, needle, trained, tmp_path, monkeypatch, capsys):
    out, _ = trained
    f = tmp_path / "in.txt"
    if content == "DIR":
        f.mkdir()
    elif content is not None:
        f.write_bytes(content)
    args = {"train": ["train", "--data", f, "--out", tmp_path / "ck", *TINY],
            "tokenize": ["tokenize", f, "-o", tmp_path / "t.model"],
            "eval": ["eval", "--data", f, "-c", out / "best.pt"],
            "reconstruct": ["reconstruct", "-i", f, "-c", out / "best.pt"],
            "encode": ["encode", "-i", f, "-c", out / "best.pt"]}[command]
    code, stdout, err = run_cli(args, monkeypatch, capsys)
    assert code == 2, (command, err)
    assert needle in err and str(f) in err
    assert len(err.strip().splitlines()) == 1 and "Traceback" not in err
    assert not (tmp_path / "ck" / "last.pt").exists()


def test_crlf_long_lines_and_unknown_characters_are_handled(trained, tmp_path, monkeypatch, capsys):
    out, _ = trained
    f = tmp_path / "in.txt"
    long_line = " ".join(["the old dog"] * 350_000)          # ~4 MB on one line
    f.write_bytes(b"the dog ran .\r\nthe cat sat .\r\n" + long_line.encode() + b"\r\nthe \xe2\x98\x83 sat .\r\n")
    code, stdout, err = run_cli(["eval", "--data", f, "-c", out / "best.pt", "-k", "2", "--json"], monkeypatch, capsys)
    assert code == 0, err
    assert json.loads(stdout)["sentences"] == 4
    assert "1 sentence(s) longer than --max-len" in err and "unknown to the tokenizer" in err
    code, stdout, err = run_cli(["reconstruct", "-i", f, "-c", out / "best.pt"], monkeypatch, capsys)
    assert code == 0 and len(stdout.splitlines()) == 4
    assert "truncated" in err and "<unk>" in err


def test_streaming_memory_does_not_grow_with_input(trained, tmp_path):
    out, _ = trained
    lines = (BUNDLED / "train.txt").read_text().splitlines()
    peaks = []
    for n in (2_000, 120_000):
        f = tmp_path / f"in{n}.txt"
        f.write_text("\n".join((lines * 30)[:n]) + "\n")
        code = ("import resource, runpy, sys\n"
                f"sys.argv = ['sentvae', 'encode', '-c', {str(out / 'best.pt')!r}]\n"
                "try:\n    runpy.run_module('sentvae', run_name='__main__')\nexcept SystemExit:\n    pass\n"
                "sys.stderr.write('RSS=%d' % resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)")
        with open(f, "rb") as stdin:
            r = subprocess.run([sys.executable, "-c", code], stdin=stdin, stdout=subprocess.DEVNULL,
                               stderr=subprocess.PIPE, text=True, cwd=ROOT, timeout=300)
        peaks.append(int(r.stderr.rsplit("RSS=", 1)[1]) / 1024)
    # 60x the input (5.6 MB of text, 120,000 codes out): holding the input's lines alone would
    # add ~15 MB, the output's ~20 MB; streaming moves the peak by allocator noise (~3 MB measured)
    assert peaks[1] - peaks[0] < 8, peaks
