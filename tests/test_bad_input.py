"""Bad input of every kind: one line naming the file, line or argument at fault, exit 2,
nothing on stdout (no output written ahead of the refusal), nothing traced back."""

import json

import pytest
import torch

import sentvae
from sentvae.errors import SentvaeError
from conftest import run_cli


def _one_line(code, stdout, err, *needles):
    assert code == 2, err
    assert len(err.strip().splitlines()) == 1 and "Traceback" not in err, err
    assert stdout == "", stdout
    for n in needles:
        assert n in err, (n, err)


# --- codes read by `decode` and Model.decode: finite float32 values of the model's latent size

BAD_VALUES = {"nan": ("NaN", "nan is not a finite number"),
              "infinity": ("Infinity", "inf is not a finite number"),
              "minus-infinity": ("-Infinity", "-inf is not a finite number"),
              "beyond-float32": ("1e39", "beyond float32's range"),
              "just-beyond-float32": ("3.41e38", "beyond float32's range"),
              "400-digit-integer": ("1" + "0" * 399, "an integer of 400 digits is beyond float32's range"),
              "5000-digit-integer": ("1" + "0" * 4999, "not JSON")}


@pytest.mark.parametrize("case", sorted(BAD_VALUES))
def test_decode_refuses_codes_float32_cannot_hold(case, trained, tmp_path, monkeypatch, capsys):
    out, _ = trained
    value, needle = BAD_VALUES[case]
    ok = "[" + ", ".join(["0.5"] * 8) + "]"
    bad = "[" + ", ".join(["0.5"] * 7 + [value]) + "]"
    f = tmp_path / "codes.jsonl"
    f.write_text(f'{{"z": {ok}}}\n{{"z": {bad}}}\n')
    code, stdout, err = run_cli(["decode", "-i", f, "-c", out / "best.pt"], monkeypatch, capsys)
    _one_line(code, stdout, err, f"{f} line 2", needle)


def test_decode_takes_float32s_largest_value(trained, tmp_path, monkeypatch, capsys):
    out, _ = trained
    f = tmp_path / "codes.jsonl"
    f.write_text(json.dumps({"z": [3.4028234663852886e38, -3.4028234663852886e38] + [0] * 6}) + "\n")
    code, stdout, err = run_cli(["decode", "-i", f, "-c", out / "best.pt"], monkeypatch, capsys)
    assert code == 0 and len(stdout.splitlines()) == 1, err


@pytest.mark.parametrize("z,needle", [
    (torch.full((2, 8), float("nan")), "row 0, number 1: nan is not a finite number"),
    ([[0.0] * 8, [0.0] * 7 + [float("inf")]], "row 1, number 8: inf is not a finite number"),
    ([[0.0] * 7 + [1e39]], "row 0, number 8: 1e+39 is beyond float32's range"),
    ([[0] * 7 + [10 ** 400]], "z: not codes"),
    ([[0.0] * 7], "codes must be (N, 8), not (1, 7)"),
    ([["a"] * 8], "z: not codes"),
], ids=["nan-tensor", "inf", "beyond-float32", "400-digit-integer", "shape", "strings"])
def test_model_decode_refuses_codes_float32_cannot_hold(z, needle, trained):
    out, _ = trained
    model = sentvae.load(out / "best.pt", device="cpu")
    with pytest.raises(SentvaeError) as e:
        model.decode(z)
    assert needle in str(e.value), str(e.value)


# --- the <unk> rule: text mostly unknown to the tokenizer is refused, measured in words

OTHER_SCRIPTS = {
    "greek": "Καλημέρα κόσμε τι κάνεις σήμερα ?\nΤο σκυλί τρέχει στο πάρκο .\n",   # the English has "?" and "."
    "cjk": "我今天去公园散步 。\n狗 在 公园 里 跑 。\n",
    "emoji": "😀 😂 🎉 👍 🐶\n🐱 🌧 ☕ 🚲 🎈\n",
}


@pytest.fixture(scope="module")
def english_bpe(corpus_dir, tmp_path_factory):
    """A BPE tokenizer trained on English: another script's word is the word-boundary piece
    and <unk>, so only half its pieces are unknown."""
    from sentvae.data import read_texts
    from sentvae.tokenizer import train_tokenizer
    path = tmp_path_factory.mktemp("bpe") / "en.model"
    train_tokenizer(read_texts([str(corpus_dir / "train.txt")]), "bpe", 500).save(path)
    return path


@pytest.mark.parametrize("script", sorted(OTHER_SCRIPTS))
def test_text_in_another_script_is_refused(script, english_bpe, corpus_dir, tmp_path, monkeypatch, capsys):
    from sentvae.corpus import load_corpus
    from sentvae.tokenizer import Tokenizer
    f = tmp_path / f"{script}.txt"
    f.write_text(OTHER_SCRIPTS[script], encoding="utf-8")
    corpus = load_corpus([str(f)], Tokenizer.load(english_bpe), 50)
    # every word not in ASCII is unknown, however many pieces it is ("." is known)
    foreign = sum(any(ord(c) > 127 for c in w) for w in OTHER_SCRIPTS[script].split())
    assert corpus.n_unk == foreign and foreign / corpus.words.sum() > 0.5
    pieces = [corpus.sentence(i) for i in range(len(corpus))]
    assert sum(x.count(1) for x in pieces) / sum(map(len, pieces)) <= 0.5     # why pieces would not do
    code, stdout, err = run_cli(["train", "--data", f, "--valid", corpus_dir / "valid.txt", "--tokenizer", english_bpe,
                                 "--out", tmp_path / "ck", "--max-steps", "2"], monkeypatch, capsys)
    _one_line(code, stdout, err, str(f), f"{100 * foreign / corpus.words.sum():.0f}% of its words are unknown "
              "to this tokenizer")
    assert not (tmp_path / "ck").exists()


@pytest.fixture(scope="module")
def bpe_run(english_bpe, corpus_dir, tmp_path_factory):
    """One step of training with the English BPE tokenizer, on English with a Greek word in
    every tenth sentence (20 in all): -> (run folder, the "input" events' unknown words)."""
    tmp = tmp_path_factory.mktemp("bpe-run")
    lines = (corpus_dir / "train.txt").read_text().splitlines()[:200]
    f = tmp / "mixed.txt"
    f.write_text("\n".join(line + (" κόσμε" if i % 10 == 0 else "") for i, line in enumerate(lines)) + "\n",
                 encoding="utf-8")
    seen = {}
    sentvae.train(data=f, out=tmp / "ck", tokenizer=english_bpe, emb_dim=16, hidden=16, latent=4,
                  max_tokens=400, max_steps=1, eval_every=1,
                  on_event=lambda kind, info: seen.update({info["what"]: info["unk"]}) if kind == "input" else None)
    return tmp / "ck", seen


def test_the_unk_rule_refuses_an_eval_in_another_script(bpe_run, tmp_path, monkeypatch, capsys):
    out, _ = bpe_run
    f = tmp_path / "mixed.txt"
    f.write_text("the dog ran to the old park .\n" + OTHER_SCRIPTS["greek"] + OTHER_SCRIPTS["emoji"], encoding="utf-8")
    code, stdout, err = run_cli(["eval", "-c", out / "best.pt", "--data", f, "-k", "2"], monkeypatch, capsys)
    _one_line(code, stdout, err, str(f), "67% of its words are unknown to this tokenizer")   # 20 of 30


def test_unknown_words_are_counted_as_words_and_once_per_split(bpe_run):
    """English with a Greek word in some sentences: accepted, and the warnings count the
    unknown words of each split (the held-out validation included) once."""
    _, seen = bpe_run
    assert seen["training"] + seen["validation"] == 20, seen


# --- blank-only input: refused with nothing printed first (output i still answers input i)

@pytest.mark.parametrize("command,as_json", [("reconstruct", False), ("reconstruct", True), ("encode", True),
                                             ("decode", False), ("decode", True)])
def test_blank_only_input_prints_nothing_before_its_refusal(command, as_json, trained, tmp_path, monkeypatch, capsys):
    out, _ = trained
    f = tmp_path / "in.txt"
    blank = "\n  \n\n" if command != "decode" else '\n{"z": null}\n\n{"mu": null}\n'
    f.write_text(blank)
    args = [command, "-i", f, "-c", out / "best.pt"] + (["--json"] if as_json and command != "encode" else [])
    code, stdout, err = run_cli(args, monkeypatch, capsys)
    _one_line(code, stdout, err, str(f), "no code to decode" if command == "decode" else "no text")
    # blank lines before and after real ones still come out in place
    real = "the dog ran .\n" if command != "decode" else json.dumps({"z": [0.0] * 8}) + "\n"
    f.write_text(blank + real + blank)
    code, stdout, err = run_cli(args, monkeypatch, capsys)
    assert code == 0, err
    lines = stdout.split("\n")[:-1]
    n = len(blank.split("\n")) - 1
    assert len(lines) == 2 * n + 1, lines
    if as_json or command == "encode":             # (a plain reconstruction may itself be empty)
        nulls = [any(v is None for v in json.loads(x).values()) for x in lines]
        assert nulls == [j != n for j in range(2 * n + 1)], lines


# --- the rest: each a class of input that failed with a traceback or a misleading line

def test_a_line_too_long_to_train_a_tokenizer_on_names_file_and_line(corpus_dir, tmp_path, monkeypatch, capsys):
    """SentencePiece's trainer skips sentences over 64 KiB without a word (and fails with its
    own internal message when every one is)."""
    f = tmp_path / "long.txt"
    f.write_text("the dog ran .\n" + " ".join(["the old dog"] * 30000) + "\na cat sat .\n")
    for args in (["tokenize", f, "-o", tmp_path / "t.model"],
                 ["train", "--data", f, "--out", tmp_path / "ck", "--model-type", "word"]):
        code, stdout, err = run_cli(args, monkeypatch, capsys)
        _one_line(code, stdout, err, f"{f} line 2: a sentence of 359,999 bytes")
    code, stdout, err = run_cli(["tokenize", "-o", tmp_path / "t.model"], monkeypatch, capsys, stdin="x" * 70000 + "\n")
    _one_line(code, stdout, err, "<stdin> line 1: a sentence of 70,000 bytes")
    assert not (tmp_path / "t.model").exists() and not (tmp_path / "ck").exists()


def test_evaluating_no_sentence_is_a_user_error(trained):
    out, _ = trained
    model = sentvae.load(out / "best.pt", device="cpu")
    for call in (model.evaluate, model.score):
        with pytest.raises(SentvaeError, match="no sentence to evaluate"):
            call([])


def test_a_directory_given_as_a_recipe_says_so(tmp_path, monkeypatch, capsys):
    (tmp_path / "recipes").mkdir()
    code, stdout, err = run_cli(["train", "--config", tmp_path / "recipes"], monkeypatch, capsys)
    _one_line(code, stdout, err, f"--config {tmp_path / 'recipes'}: is a directory")
    (tmp_path / "r.toml").write_text('base = "recipes"\n')
    code, stdout, err = run_cli(["train", "--config", tmp_path / "r.toml"], monkeypatch, capsys)
    _one_line(code, stdout, err, "base 'recipes': is a directory")


@pytest.mark.parametrize("flag", [["--aggressive"], ["--pretrain-steps", "2"], ["--bow-weight", "1"],
                                  ["--free-bits", "0.5"]], ids=lambda f: f[0])
def test_options_an_lm_cannot_use_are_refused_before_anything_is_written(flag, corpus_dir, tmp_path, monkeypatch,
                                                                         capsys):
    ck = tmp_path / "ck"
    code, stdout, err = run_cli(["train", "--data", corpus_dir / "train.txt", "--valid", corpus_dir / "valid.txt",
                                 "--out", ck, "--no-latent", *flag, "--model-type", "word", "--max-steps", "2",
                                 "--emb-dim", "16", "--hidden", "16"], monkeypatch, capsys)
    _one_line(code, stdout, err, f"{flag[0]}: a --no-latent model (an LM)")
    assert not ck.exists()


def test_an_empty_interpolation_end_names_the_option(trained, tmp_path, monkeypatch, capsys):
    out, _ = trained
    code, stdout, err = run_cli(["plot", "--latent", out, "--path", "the dog ran .", "--path", " ",
                                 "-o", tmp_path / "m.png", "--max-sentences", "10"], monkeypatch, capsys)
    _one_line(code, stdout, err, "--path: sentence 2 is empty")


# --- found by trying every command with every kind of bad file

@pytest.mark.parametrize("content,needle", [
    ('{"text": "a dog ran ."}\n{"text": 1' + "0" * 5000 + "}\n", "line 2: not JSON (ValueError)"),
    ('{"text": "a dog ran ."}\n' + "[" * 100000 + "\n", "line 2: not JSON (RecursionError)"),
], ids=["5000-digit-integer", "deep-nesting"])
def test_json_lines_data_python_cannot_parse_is_one_line(content, needle, trained, tmp_path, monkeypatch, capsys):
    out, _ = trained
    f = tmp_path / "d.jsonl"
    f.write_text(content)
    for args in (["tokenize", f, "-o", tmp_path / "t.model"], ["eval", "-c", out / "best.pt", "--data", f],
                 ["train", "--data", f, "--out", tmp_path / "ck"],
                 ["plot", "--latent", "-c", out / "best.pt", "--data", f, "-o", tmp_path / "m.png"]):
        code, stdout, err = run_cli(args, monkeypatch, capsys)
        _one_line(code, stdout, err, f"{f} {needle}")


def test_outputs_that_cannot_be_written_are_refused_before_the_work(trained, corpus_dir, tmp_path, monkeypatch, capsys):
    """A directory where the file goes, or a file where a folder goes: said at once (tokenize
    would train its tokenizer first, eval evaluate everything, train read all its data)."""
    import sentvae.tokenizer
    import sentvae.evaluate
    out, _ = trained
    (tmp_path / "adir").mkdir()
    (tmp_path / "afile").write_text("x")

    def never(*a, **k):
        raise AssertionError("the work began")

    monkeypatch.setattr(sentvae.tokenizer, "train_tokenizer", never)
    monkeypatch.setattr(sentvae.evaluate, "evaluate", never)
    for args, needle in (
            (["tokenize", corpus_dir / "valid.txt", "-o", tmp_path / "adir"], "is a directory"),
            (["tokenize", corpus_dir / "valid.txt", "-o", tmp_path / "afile" / "t.model"],
             f"{tmp_path / 'afile'} is a file, not a folder"),
            (["eval", "-c", out / "best.pt", "-k", "2", "--per-sentence", tmp_path / "adir"], "is a directory"),
            (["eval", "-c", out / "best.pt", "-k", "2", "--per-sentence", tmp_path / "nowhere" / "p.jsonl"],
             "does not exist")):
        code, stdout, err = run_cli(args, monkeypatch, capsys)
        _one_line(code, stdout, err, needle)
    for o in (tmp_path / "afile", tmp_path / "afile" / "ck"):
        code, stdout, err = run_cli(["train", "--data", corpus_dir / "train.txt", "--out", o], monkeypatch, capsys)
        _one_line(code, stdout, err, f"--out {o}: ", f"{tmp_path / 'afile'}", "is a file, not a folder")
    assert (tmp_path / "afile").read_text() == "x"


def test_outputs_never_replace_what_the_command_reads_a_run_or_a_checkpoint(trained, corpus_dir, tmp_path,
                                                                            monkeypatch, capsys):
    """eval --per-sentence and tokenize -o replace an earlier output of theirs (a rerun), never the
    command's own input, a run folder's files or a checkpoint: refused before the work, unchanged."""
    import shutil
    import sentvae.evaluate
    import sentvae.tokenizer
    run = tmp_path / "run"
    shutil.copytree(trained[0], run)                       # a copy: the shared run must survive a broken check
    loose = tmp_path / "model.pt"
    shutil.copy(run / "best.pt", loose)
    data = tmp_path / "valid.txt"
    shutil.copy(corpus_dir / "valid.txt", data)
    before = {p: p.read_bytes() for p in (loose, data, *run.iterdir())}

    def never(*a, **k):
        raise AssertionError("the work began")

    with monkeypatch.context() as m:
        m.setattr(sentvae.tokenizer, "train_tokenizer", never)
        m.setattr(sentvae.evaluate, "evaluate", never)
        for args, needle in (
                (["eval", "-c", loose, "-d", data, "--per-sentence", loose], f"is what this command reads (-c {loose})"),
                (["eval", "-c", loose, "-d", data, "--per-sentence", data], f"is what this command reads (--data {data})"),
                (["eval", "-c", loose, "-d", data, "--per-sentence", run / "last.pt"], f"is a file of the run in {run}"),
                (["eval", "-c", loose, "-d", data, "--per-sentence", run / "metrics.jsonl"], "is a file of the run"),
                (["eval", "-c", run / "best.pt", "-d", data, "--per-sentence", tmp_path / "model.pt"],
                 "holds a checkpoint"),
                (["tokenize", data, "-o", data], f"-o {data}: is what this command reads ({data})"),
                (["tokenize", data, "-o", run / "tokenizer.model"], "is a file of the run")):
            code, stdout, err = run_cli(args, monkeypatch, capsys)
            _one_line(code, stdout, err, needle)
    assert {p: p.read_bytes() for p in before} == before
    per = tmp_path / "per.jsonl"                           # its own earlier output: written again
    for _ in range(2):
        code, _, err = run_cli(["eval", "-c", loose, "-d", data, "-k", "2", "-q", "--per-sentence", per], monkeypatch,
                               capsys)
        assert code == 0, err
    assert len(per.read_text().splitlines()) == len(data.read_text().splitlines())


def test_a_link_keeps_being_a_link_and_a_fifo_is_written_into(tmp_path):
    """write_atomically renames a new file over its target: over a symbolic link it would replace
    the link, over a device or a FIFO put a plain file in its place (as /dev/full once, as root)."""
    import os
    import threading
    from sentvae.atomic import write_atomically
    target, link = tmp_path / "target.txt", tmp_path / "link.txt"
    target.write_text("old")
    link.symlink_to(target)
    write_atomically(link, lambda f: f.write(b"new"))
    assert link.is_symlink() and target.read_text() == "new"
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    got = []
    reader = threading.Thread(target=lambda: got.append(open(fifo, "rb").read()), daemon=True)
    reader.start()
    write_atomically(fifo, lambda f: f.write(b"through"))
    reader.join(timeout=10)
    assert got == [b"through"] and fifo.is_fifo()


def test_a_binary_code_file_gets_no_hint_of_an_option_decode_lacks(trained, tmp_path, monkeypatch, capsys):
    bad = tmp_path / "codes.bin"
    bad.write_bytes(b"\xff\xfe{}\n")
    code, stdout, err = run_cli(["decode", "-c", trained[0] / "best.pt", "-i", bad], monkeypatch, capsys)
    _one_line(code, stdout, err, f"{bad} line 1: not valid UTF-8 (byte 1)")
    assert "--encoding-errors" not in err


def test_missing_start_checkpoints_name_their_option(trained, corpus_dir, tmp_path, monkeypatch, capsys):
    for flag in ("--init-from", "--init-decoder"):
        code, stdout, err = run_cli(["train", "-d", corpus_dir / "train.txt", "-o", tmp_path / "r", flag,
                                     tmp_path / "none.pt"], monkeypatch, capsys)
        _one_line(code, stdout, err, f"{flag} {tmp_path / 'none.pt'}: checkpoint not found")
        assert "-c PATH" not in err                        # train has no -c
    code, stdout, err = run_cli(["probe", trained[0] / "best.pt", "--task", corpus_dir / "valid.txt", "--lm",
                                 tmp_path / "none.pt"], monkeypatch, capsys)
    _one_line(code, stdout, err, f"--lm {tmp_path / 'none.pt'}: checkpoint not found")


def test_stdin_given_twice_is_refused(tok, tmp_path, monkeypatch, capsys):
    tok.save(tmp_path / "t.model")
    code, stdout, err = run_cli(["train", "-d", "-", "--valid", "-", "-o", tmp_path / "r", "--tokenizer",
                                 tmp_path / "t.model"], monkeypatch, capsys, stdin="the dog ran .\n" * 50)
    _one_line(code, stdout, err, "--valid -: stdin is read once, and --data - reads it")
    assert not (tmp_path / "r").exists()


def test_a_directory_given_as_a_tokenizer_says_so(corpus_dir, tmp_path, monkeypatch, capsys):
    code, stdout, err = run_cli(["train", "--data", corpus_dir / "train.txt", "--tokenizer", tmp_path,
                                 "--out", tmp_path / "ck"], monkeypatch, capsys)
    _one_line(code, stdout, err, f"{tmp_path}: is a directory, expected a tokenizer model")


def test_input_that_cannot_be_read_is_one_line(trained, corpus_dir, tmp_path, monkeypatch, capsys):
    """No permission to open it (simulated: the tests run as root), or an I/O error midway."""
    import errno
    import sentvae.data
    out, _ = trained
    real_open = open
    f = tmp_path / "in.txt"
    f.write_text("the dog ran .\n" * 50)

    def denied(path, *a, **k):
        if str(path) == str(f):
            raise PermissionError(errno.EACCES, "Permission denied")
        return real_open(path, *a, **k)

    monkeypatch.setattr(sentvae.data, "open", denied, raising=False)
    for args in (["tokenize", f, "-o", tmp_path / "t.model"], ["reconstruct", "-i", f, "-c", out / "best.pt"]):
        code, stdout, err = run_cli(args, monkeypatch, capsys)
        _one_line(code, stdout, err, f"{f}: cannot read (Permission denied)")

    class Failing:
        def __init__(self, path, *a, **k):
            self.f, self.n = real_open(path, *a, **k), 0

        def readline(self):
            self.n += 1
            if self.n == 3:
                raise OSError(errno.EIO, "Input/output error")
            return self.f.readline()

        def close(self):
            self.f.close()

    monkeypatch.setattr(sentvae.data, "open", Failing, raising=False)
    code, stdout, err = run_cli(["tokenize", f, "-o", tmp_path / "t.model"], monkeypatch, capsys)
    assert code == 1 and f"{f} line 3: cannot read (Input/output error)" in err, err
    assert len(err.strip().splitlines()) == 1 and not (tmp_path / "t.model").exists()


def test_a_failure_inside_the_sentences_is_not_reported_as_sentencepieces(tmp_path):
    from sentvae.tokenizer import train_tokenizer

    def sentences():
        yield "the dog ran ."
        raise MemoryError("the reader ran out of memory")

    with pytest.raises(MemoryError, match="the reader ran out"):
        train_tokenizer(sentences(), "word", 50)
