import json
import os
import signal
import subprocess
import sys
import time

import pytest

from sentvae.checkpoint import load_checkpoint
from conftest import ROOT, run_cli

TINY = ["--emb-dim", "32", "--hidden", "32", "--latent", "8", "--max-tokens", "400",
        "--eval-every", "10", "--log-every", "5", "--anneal-steps", "20"]


def test_tokenize_train_sample_interpolate_chain(tmp_path, corpus_dir, monkeypatch, capsys):
    tokm = tmp_path / "tok.model"
    code, out, err = run_cli(["tokenize", corpus_dir / "train.txt", "-o", tokm, "--model-type", "word",
                              "--vocab-size", "500"], monkeypatch, capsys)
    assert code == 0 and out == "" and tokm.is_file() and "pieces" in err
    ck = tmp_path / "ck"
    code, out, err = run_cli(["train", "--data", corpus_dir / "train.txt", "--valid", corpus_dir / "valid.txt",
                              "--tokenizer", tokm, "--out", ck, "--max-steps", "20", *TINY], monkeypatch, capsys)
    assert code == 0, err
    assert out == ""                                   # progress and figures go to stderr
    assert "valid" in err and (ck / "best.pt").is_file() and (ck / "last.pt").is_file()
    assert (ck / "metrics.jsonl").read_text().count("\n") >= 4

    code, out, err = run_cli(["sample", "-n", "7", "-c", ck / "best.pt", "--seed", "3"], monkeypatch, capsys)
    assert code == 0 and len(out.splitlines()) == 7
    code2, out2, _ = run_cli(["sample", "-n", "7", "-c", ck / "best.pt", "--seed", "3"], monkeypatch, capsys)
    assert out2 == out                                 # same seed, same samples

    code, out, err = run_cli(["interpolate", "the dog ran .", "did the man read a book ?", "--steps", "5",
                              "-c", ck / "best.pt", "--json"], monkeypatch, capsys)
    assert code == 0, err
    rows = [json.loads(line) for line in out.splitlines()]
    assert [r["t"] for r in rows] == [0.0, 0.25, 0.5, 0.75, 1.0] and all("text" in r for r in rows)

    code, out, err = run_cli(["info", ck / "last.pt", "--json"], monkeypatch, capsys)
    info = json.loads(out)
    assert code == 0 and info["step"] == 20 and info["resumable"] and info["model"]["latent"] == 8


def test_train_without_tokenizer_trains_one_and_holds_out_validation(tmp_path, corpus_dir, monkeypatch, capsys):
    ck = tmp_path / "ck"
    code, out, err = run_cli(["train", "--data", corpus_dir / "train.txt", "--out", ck, "--max-steps", "4",
                              "--model-type", "word", *TINY], monkeypatch, capsys)
    assert code == 0, err
    assert (ck / "tokenizer.model").is_file()
    ckpt = load_checkpoint(ck / "best.pt")
    assert ckpt["tokenizer"] == (ck / "tokenizer.model").read_bytes()
    assert ckpt["info"]["valid"]["sentences"] == 30    # 5% of 600 held out
    assert ckpt["info"]["train_sentences"] == 570


@pytest.mark.parametrize("args,needle", [
    (["train", "--data", "nope.txt"], "nope.txt: no such file"),
    (["train", "--kl-anneal", "sometimes"], "--kl-anneal"),
    (["train", "--word-dropout", "2"], "--word-dropout"),
    (["train", "--device", "tpu"], "--device"),
    (["sample", "-c", "missing.pt"], "missing.pt: checkpoint not found"),
    (["sample", "-n", "0", "-c", "missing.pt"], "-n"),
    (["tokenize", "nope.txt"], "nope.txt: no such file"),
    (["tokenize", "x.txt", "--model-type", "morse"], "--model-type"),
])
def test_bad_usage_is_one_line_and_exit_2(args, needle, tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "x.txt").write_text("a b c\n")
    code, out, err = run_cli(args, monkeypatch, capsys)
    assert code == 2
    assert needle in err and len(err.strip().splitlines()) == 1 and "Traceback" not in err
    assert out == ""


def test_bad_utf8_names_file_and_line(tmp_path, corpus_dir, monkeypatch, capsys):
    bad = tmp_path / "bad.txt"
    bad.write_bytes((corpus_dir / "train.txt").read_bytes()[:2000].rsplit(b"\n", 1)[0] + b"\nthe \xc3\x28 cat .\n")
    n = bad.read_bytes().count(b"\n")
    code, out, err = run_cli(["train", "--data", bad, "--out", tmp_path / "ck", *TINY], monkeypatch, capsys)
    assert code == 2 and f"{bad} line {n}: not valid UTF-8" in err and "--encoding-errors" in err
    assert not (tmp_path / "ck" / "last.pt").exists()


def test_long_lines_are_truncated_and_counted(tmp_path, corpus_dir, monkeypatch, capsys):
    data = tmp_path / "d.txt"
    data.write_text((corpus_dir / "train.txt").read_text() + " ".join(["the old dog"] * 30) + "\n")
    code, out, err = run_cli(["train", "--data", data, "--valid", corpus_dir / "valid.txt", "--out", tmp_path / "ck",
                              "--max-steps", "2", "--max-len", "40", "--model-type", "word", *TINY], monkeypatch, capsys)
    assert code == 0, err
    assert "1 training sentence(s) longer than --max-len 40 pieces were truncated" in err.replace("\n", " ")


def test_debug_shows_the_traceback(tmp_path, monkeypatch, capsys):
    with pytest.raises(Exception, match="checkpoint not found"):
        from sentvae import cli
        monkeypatch.setattr(sys, "argv", ["sentvae", "--debug", "sample", "-c", str(tmp_path / "x.pt")])
        cli.main()


def _sentvae(*args, **kw):
    return subprocess.run([sys.executable, "-m", "sentvae", *args], cwd=ROOT, capture_output=True,
                          text=True, timeout=120, **kw)


def test_help_is_fast_and_does_not_import_torch():
    code = ("import sys, runpy; sys.argv = ['sentvae', '--help']\n"
            "try:\n    runpy.run_module('sentvae', run_name='__main__')\n"
            "except SystemExit:\n    pass\n"
            "heavy = [m for m in ('torch', 'datasets', 'sentencepiece') if m in sys.modules]\n"
            "sys.stderr.write('HEAVY=' + ','.join(heavy))")
    for args in ([], ["train"], ["sample"], ["plot"]):
        r = subprocess.run([sys.executable, "-c", code.replace("'--help'", ", ".join(repr(a) for a in [*args, "--help"]))],
                           cwd=ROOT, capture_output=True, text=True, timeout=60)
        assert "Usage" in r.stdout and r.stderr.strip().endswith("HEAVY="), (args, r.stderr[-300:])


def test_ctrl_c_during_training_saves_last_and_exits_130(tmp_path, corpus_dir):
    ck = tmp_path / "ck"
    p = subprocess.Popen([sys.executable, "-m", "sentvae", "train", "--data", str(corpus_dir / "train.txt"),
                          "--model-type", "word", "--out", str(ck), "--max-steps", "100000", "--epochs", "0", *TINY],
                         cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.time() + 90
    while time.time() < deadline and not (ck / "metrics.jsonl").exists():   # training has begun
        time.sleep(0.2)
    time.sleep(1.0)
    p.send_signal(signal.SIGINT)
    out, err = p.communicate(timeout=60)
    assert p.returncode == 130, err[-500:]
    assert "interrupted at step" in err and "Traceback" not in err
    ckpt = load_checkpoint(ck / "last.pt")
    assert ckpt["train_state"]["position"]["step"] > 0


def test_train_from_stdin_and_resume_from_the_cli(tmp_path, corpus_dir, tok, monkeypatch, capsys):
    tokm = tmp_path / "tok.model"
    tok.save(tokm)
    ck = tmp_path / "ck"
    text = (corpus_dir / "train.txt").read_text()
    code, out, err = run_cli(["train", "--data", "-", "--tokenizer", tokm, "--out", ck, "--max-steps", "6", *TINY],
                             monkeypatch, capsys, stdin=text)
    assert code == 0, err
    assert load_checkpoint(ck / "last.pt")["info"]["train_sentences"] == 570
    code, out, err = run_cli(["train", "--data", "-", "--out", ck, "--overwrite"], monkeypatch, capsys, stdin=text)
    assert code == 2 and "--tokenizer" in err                  # stdin cannot be read twice
    code, out, err = run_cli(["train", "--resume", "--data", "-", "--out", ck, "--hidden", "64"],
                             monkeypatch, capsys, stdin=text)
    assert code == 2 and "--hidden" in err and "resume" in err and "last.pt was trained with 32, not 64" in err
    code, out, err = run_cli(["train", "--resume", "--data", "-", "--out", ck, "--max-steps", "9"],
                             monkeypatch, capsys, stdin=text)
    assert code == 0, err
    ckpt = load_checkpoint(ck / "last.pt")
    assert ckpt["train_state"]["position"]["step"] == 9
    assert ckpt["train_config"]["max_tokens"] == 400          # the saved config, not the defaults


def _into_closed_pipe(args, stdin=None):
    """Run sentvae with stdout a pipe whose reader has already gone: -> (sentvae's exit code, stderr)."""
    r, w = os.pipe()
    os.close(r)
    try:
        p = subprocess.run([sys.executable, "-m", "sentvae", *map(str, args)], stdout=w, stderr=subprocess.PIPE,
                           input=stdin, text=True, cwd=ROOT, timeout=120)
    finally:
        os.close(w)
    return p.returncode, p.stderr


@pytest.mark.parametrize("args,stdin", [
    (["sample", "-n", "3000"], None),
    (["reconstruct"], "the dog ran .\n" * 2000),
    (["encode"], "the dog ran .\n" * 2000),
    (["interpolate", "the dog ran .", "a cat sat .", "--steps", "50"], None),
])
def test_closed_stdout_ends_quietly(trained, args, stdin):
    out, _ = trained
    code, err = _into_closed_pipe([*args, "-c", out / "best.pt"], stdin)
    assert code == 0 and err == "", err[-500:]
    # and in a real pipeline: sentvae's own exit status, not head's
    r = subprocess.run(["bash", "-c", f"'{sys.executable}' -m sentvae {' '.join(map(repr, args))} -c '{out / 'best.pt'}' "
                        "| head -1; echo \"status=${PIPESTATUS[0]}\" >&2"],
                       input=stdin, cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert len(r.stdout.splitlines()) == 1 and r.stderr == "status=0\n", r.stderr[-500:]


@pytest.mark.parametrize("args", [["sample", "-n", "3"], ["info", "--json"], ["encode", "the dog ran ."]])
def test_stdout_that_cannot_be_written_is_one_line_and_exit_1(trained, args):
    """A full device (/dev/full) or a closed descriptor (`>&-`): the results cannot be delivered,
    a run-time failure: one line on stderr, exit 1, no traceback."""
    out, _ = trained
    cmd = [sys.executable, "-m", "sentvae", *args, "-c", str(out / "best.pt")] if args[0] != "info" else \
        [sys.executable, "-m", "sentvae", "info", str(out / "best.pt"), "--json"]
    with open("/dev/full", "w") as full:
        p = subprocess.run(cmd, stdout=full, stderr=subprocess.PIPE, text=True, cwd=ROOT, timeout=120)
    assert p.returncode == 1 and p.stderr == "error: cannot write the output to stdout (No space left on device)\n", \
        p.stderr[-800:]
    p = subprocess.run(["bash", "-c", " ".join(f"'{a}'" for a in cmd) + " >&-"], stderr=subprocess.PIPE, text=True,
                       cwd=ROOT, timeout=120)
    assert p.returncode == 1 and p.stderr == "error: cannot write the output to stdout (standard output is closed)\n", \
        p.stderr[-800:]


def test_every_command_works_with_a_transformer_checkpoint(tmp_path, corpus_dir, tok, monkeypatch, capsys):
    tokm = tmp_path / "tok.model"
    tok.save(tokm)
    ck = tmp_path / "ck"
    code, out, err = run_cli(["train", "--arch", "transformer", "--d-model", "32", "--heads", "2", "--ff", "64",
                              "--layers", "1", "--latent", "8", "--max-tokens", "400", "--eval-every", "10",
                              "--data", corpus_dir / "train.txt", "--valid", corpus_dir / "valid.txt",
                              "--tokenizer", tokm, "--out", ck, "--max-steps", "10"], monkeypatch, capsys)
    assert code == 0, err
    best = ck / "best.pt"
    code, out, err = run_cli(["info", best, "--json"], monkeypatch, capsys)
    assert code == 0 and json.loads(out)["model"]["arch"] == "transformer"
    code, out, err = run_cli(["eval", "-c", best, "--data", corpus_dir / "valid.txt", "-k", "3", "--json"],
                             monkeypatch, capsys)
    assert code == 0 and json.loads(out)["sentences"] == 80
    for args, lines in ((["sample", "-n", "4"], 4), (["sample", "-n", "2", "--beam", "3"], 2),
                        (["interpolate", "the dog ran .", "a cat sat .", "--steps", "3"], 3),
                        (["reconstruct", "the dog ran .", "a cat sat ."], 2)):
        code, out, err = run_cli([*args, "-c", best], monkeypatch, capsys)
        assert code == 0, (args, err)
        assert len(out.splitlines()) == lines
    code, enc, err = run_cli(["encode", "the dog ran .", "-c", best], monkeypatch, capsys)
    code, dec, err = run_cli(["decode", "-c", best], monkeypatch, capsys, stdin=enc)
    assert code == 0 and len(dec.splitlines()) == 1


def test_recipe_files_load_and_command_line_flags_win(tmp_path, corpus_dir, monkeypatch, capsys):
    from sentvae import cli, recipe
    import typer as _typer
    params = _typer.main.get_command(cli.app).commands["train"].params
    # every shipped recipe expands to known flags
    for f in sorted((ROOT / "configs").glob("*.toml")):
        assert recipe.expand(["--config", str(f)], params)
    r = tmp_path / "r.toml"
    r.write_text(f'data = ["{corpus_dir / "train.txt"}"]\nvalid = ["{corpus_dir / "valid.txt"}"]\n'
                 f'model-type = "word"\nemb_dim = 32\nhidden = 32\nlatent = 8\nmax-tokens = 400\n'
                 f'max-steps = 3\nlr = 0.01\nbidirectional = false\nkl-anneal = "linear"\n')
    ck = tmp_path / "ck"
    for form in (["--config", r], [f"--config={r}"]):       # both spellings of the option read the file
        ck = tmp_path / f"ck{len(form)}"
        # --max-steps given too: a recipe ignored would otherwise train the bundled corpus for long
        code, out, err = run_cli(["train", *form, "--out", ck, "--lr", "0.002", "--latent", "6", "--max-steps", "3"],
                                 monkeypatch, capsys)
        assert code == 0, err
        ckpt = load_checkpoint(ck / "last.pt")
        assert ckpt["train_config"]["lr"] == 0.002 and ckpt["train_config"]["kl_anneal"] == "linear"
        assert ckpt["model_config"]["latent"] == 6 and ckpt["model_config"]["hidden"] == 32
        assert ckpt["model_config"]["bidirectional"] is False and ckpt["info"]["step"] == 3


@pytest.mark.parametrize("text,needle", [
    ('learning_rate = 0.1\n', "unknown key 'learning_rate'"),
    ('lr = -1\n', "--lr"),
    ('kl-anneal = "sometimes"\n', "--kl-anneal"),
    ('bidirectional = "yes"\n', "key 'bidirectional' must be true or false"),
    ('lr = [1, 2]\n', "key 'lr' takes one value"),
    ('max-steps = 2.5\n', "key 'max-steps': Invalid value for '--max-steps'"),
    ('lr = \n', "not valid TOML"),
])
def test_bad_recipes_are_one_line_exit_2(text, needle, tmp_path, monkeypatch, capsys):
    r = tmp_path / "r.toml"
    r.write_text(text)
    absent = ["--data", tmp_path / "absent.txt"]     # read only after the recipe: ignored, it would say so
    code, out, err = run_cli(["train", "--config", r, "--out", tmp_path / "ck", *absent], monkeypatch, capsys)
    assert code == 2 and needle in err and len(err.strip().splitlines()) == 1, err
    if "--config" in err:        # the file is named, the same in the --config=FILE form
        assert err.startswith(f"error: --config {r}: "), err
        code, out, err2 = run_cli(["train", f"--config={r}", "--out", tmp_path / "ck", *absent], monkeypatch, capsys)
        assert code == 2 and err2 == err


def test_a_recipe_varies_its_base_and_bad_bases_are_one_line_exit_2(tmp_path, monkeypatch, capsys):
    from sentvae import cli, recipe
    import typer as _typer
    params = _typer.main.get_command(cli.app).commands["train"].params
    (tmp_path / "sub").mkdir()
    (tmp_path / "a.toml").write_text('lr = 0.01\nlatent = 8\nbidirectional = false\ndata = ["x.txt"]\n')
    (tmp_path / "sub" / "b.toml").write_text('base = "../a.toml"\nlatent = 16\n')     # relative to b
    (tmp_path / "c.toml").write_text('base = "sub/b.toml"\nmax-steps = 3\n')
    args = recipe.expand(["--config", str(tmp_path / "c.toml"), "--lr", "0.5"], params)
    def value(flag):
        return args[args.index(flag) + 1]
    assert value("--latent") == "16" and value("--max-steps") == "3" and value("--data") == "x.txt"
    assert args.count("--lr") == 1 and value("--lr") == "0.5"        # the command line still wins
    assert "--unidirectional" in args and "--base" not in args
    (tmp_path / "a.toml").write_text('base = "c.toml"\n')             # a -> c -> b -> a
    (tmp_path / "d.toml").write_text('base = "nowhere.toml"\n')
    (tmp_path / "e.toml").write_text('base = 3\n')
    for name, needle in (("c.toml", "go round in a circle"), ("d.toml", "base 'nowhere.toml': no such file"),
                         ("e.toml", "key 'base' must be a file name")):
        code, out, err = run_cli(["train", "--config", tmp_path / name, "--out", tmp_path / "ck"], monkeypatch, capsys)
        assert code == 2 and needle in err and len(err.strip().splitlines()) == 1, err
    assert not (tmp_path / "ck").exists()


COMMANDS = ["tokenize", "train", "info", "eval", "sample", "interpolate", "reconstruct", "encode", "decode", "plot"]


def test_help_reads_like_a_manual():
    helps = {c: _sentvae(*([c] if c else []), "--help", env={**os.environ, "COLUMNS": "120"}).stdout
             for c in ["", *COMMANDS]}
    for c, text in helps.items():
        assert "Usage" in text and "<bool>" not in text, c           # flags take no value
    train = helps["train"]
    panels = ["Data", "Tokenizer", "Model", "Objective", "Optimisation", "Stopping", "Hardware", "Output"]
    where = [train.index(f"─ {p} ─") for p in panels]
    assert where == sorted(where)                                      # in this order
    assert "--lr-schedule" in train.split("─ Optimisation ─")[1].split("─ Stopping ─")[0]
    assert "[default: 256]" in train                                   # defaults are printed
    assert all(c in helps[""] for c in COMMANDS)
    assert _sentvae("-h").stdout == _sentvae("--help").stdout
    assert _sentvae("train", "-h").stdout == _sentvae("train", "--help").stdout


def test_version():
    from sentvae import __version__
    for flag in ("--version", "-V"):
        r = _sentvae(flag)
        assert r.returncode == 0 and r.stdout == f"sentvae {__version__}\n" and r.stderr == ""


@pytest.mark.parametrize("args", [["--help"], ["train", "--help"], ["-h"], ["--version"]])
def test_help_into_a_closed_pipe_is_quiet(args):
    code, err = _into_closed_pipe(args)
    assert code == 0 and err == "", err
    r = subprocess.run(["bash", "-c", f"'{sys.executable}' -m sentvae {' '.join(args)} | head -1; "
                        "echo \"status=${PIPESTATUS[0]}\" >&2"], cwd=ROOT, capture_output=True, text=True)
    assert r.stderr == "status=0\n"
