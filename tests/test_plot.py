"""`sentvae plot`: training curves and the latent map, and their errors."""

import json
import struct

import pytest

from conftest import run_cli


def _png_size(path):
    data = path.read_bytes()[:24]
    assert data[:8] == b"\x89PNG\r\n\x1a\n", "not a PNG"
    return struct.unpack(">II", data[16:24])


def test_curves_of_one_and_of_two_runs(trained, tmp_path, monkeypatch, capsys):
    out, _ = trained
    other = tmp_path / "other"
    other.mkdir()
    # a second run: the first one's rows, shifted, with an lr decay and a pretraining phase
    rows = [json.loads(x) for x in (out / "metrics.jsonl").read_text().splitlines()]
    for r in rows:
        r["elbo"] += 3
        if r["split"] == "train":
            r["kl_weight"] = 0.0 if r["step"] <= 20 else 1.0
        elif r["step"] == 30:
            r["decision"] = "decay"
    (other / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    for runs, name in (([out], "one.png"), ([out, other], "two.png")):
        code, stdout, err = run_cli(["plot", *runs, "-o", tmp_path / name], monkeypatch, capsys)
        assert code == 0, err
        assert _png_size(tmp_path / name) == (1200, 750) and stdout == ""
    assert (tmp_path / "two.png").read_bytes() != (tmp_path / "one.png").read_bytes()
    code, _, err = run_cli(["plot", out, "-o", tmp_path / "curves.svg"], monkeypatch, capsys)
    assert code == 0 and (tmp_path / "curves.svg").read_text().lstrip().startswith("<?xml")
    code, _, err = run_cli(["plot", out, "-o", tmp_path / "curves.pdf"], monkeypatch, capsys)
    assert code == 0 and (tmp_path / "curves.pdf").read_bytes()[:5] == b"%PDF-"


@pytest.mark.parametrize("case,needle,exit_code", [
    ("no-metrics", "no metrics.jsonl", 2),
    ("empty", "no figures yet", 2),
    ("garbage", "line 2: not a metrics line", 2),
    ("extension", "the extension picks the format", 2),
    ("folder", "does not exist", 2),
    ("directory", "is a directory", 2),
    ("unwritable", "cannot write (Permission denied)", 1),
])
def test_bad_plot_input_is_one_line(case, needle, exit_code, trained, tmp_path, monkeypatch, capsys):
    out, _ = trained
    run = tmp_path / "run"
    run.mkdir()
    target = tmp_path / "x.png"
    if case == "empty":
        (run / "metrics.jsonl").write_text("")
    elif case == "garbage":
        (run / "metrics.jsonl").write_text((out / "metrics.jsonl").read_text().splitlines()[0] + "\n{oops\n")
    elif case != "no-metrics":
        run = out
    if case == "extension":
        target = tmp_path / "x.jpg"
    elif case == "folder":
        target = tmp_path / "nowhere" / "x.png"
    elif case == "directory":
        target.mkdir()                                  # a folder where the file should go
    elif case == "unwritable":                          # (simulated: the tests run as root)
        import errno
        import matplotlib.figure

        def denied(self, path, *a, **k):
            raise PermissionError(errno.EACCES, "Permission denied")
        monkeypatch.setattr(matplotlib.figure.Figure, "savefig", denied)
    code, stdout, err = run_cli(["plot", run, "-o", target], monkeypatch, capsys)
    assert code == exit_code and needle in err and len(err.strip().splitlines()) == 1, err
    assert stdout == ""


def test_latent_map_of_a_tiny_model(trained, tmp_path, monkeypatch, capsys):
    out, _ = trained
    code, _, err = run_cli(["plot", "--latent", out, "-o", tmp_path / "map.png", "--max-sentences", "60",
                            "--path", "the dog ran .", "--path", "a cat sat on the mat ."], monkeypatch, capsys)
    assert code == 0, err
    assert _png_size(tmp_path / "map.png") == (800, 700)
    # colour by a field of a JSONL file (categories)
    data = tmp_path / "d.jsonl"
    data.write_text("".join(json.dumps({"text": t, "topic": t.split()[0]}) + "\n"
                            for t in ["the dog ran .", "a dog sat .", "the cat ran .", "a cat sat .", "the man ran ."]))
    code, _, err = run_cli(["plot", "--latent", "-c", out / "best.pt", "--data", data, "--color-by", "topic",
                            "-o", tmp_path / "topic.png"], monkeypatch, capsys)
    assert code == 0, err
    code, _, err = run_cli(["plot", "--latent", "-c", out / "best.pt", "--data", data, "--color-by", "nope",
                            "-o", tmp_path / "x.png"], monkeypatch, capsys)
    assert code == 2 and "line 1: no field 'nope' (--color-by)" in err
    code, _, err = run_cli(["plot", "--latent", out, "--path", "one", "-o", tmp_path / "x.png"], monkeypatch, capsys)
    assert code == 2 and "--path" in err


def _synthetic_run(folder, per_epoch: int, steps: int = 100):
    """metrics.jsonl of a run with `per_epoch` batches an epoch, logged every 5 steps."""
    folder.mkdir()
    rows = []
    for s in range(5, steps + 1, 5):
        rows.append({"split": "train", "step": s, "epoch": s // per_epoch, "loss": 50 - s / 10,
                     "elbo": 50 - s / 10, "rec": 45 - s / 10, "kl": 5.0, "kl_weight": 1.0, "lr": 1e-3,
                     "tokens_per_s": 1000.0})
        if s % 20 == 0:
            rows.append({"split": "valid", "step": s, "elbo": 52 - s / 10, "rec": 47 - s / 10, "kl": 5.0,
                         "au": 3, "lr": 1e-3, "best": True, "decision": "continue"})
    (folder / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    return folder


def test_steps_per_epoch_are_recovered_from_the_log():
    from sentvae.plot import batches_per_epoch
    for n in (7, 23, 31):
        train = [{"step": s, "epoch": s // n} for s in range(5, 101, 5)]
        assert batches_per_epoch(train) == pytest.approx(n, abs=0.25)
    assert batches_per_epoch([{"step": s, "epoch": 0} for s in range(5, 50, 5)]) is None


def test_curves_against_epochs(tmp_path, monkeypatch, capsys):
    a, b = _synthetic_run(tmp_path / "a", 23), _synthetic_run(tmp_path / "b", 31)
    code, _, err = run_cli(["plot", a, b, "--x", "epoch", "-o", tmp_path / "ep.png"], monkeypatch, capsys)
    assert code == 0, err
    assert _png_size(tmp_path / "ep.png") == (1200, 750)
    short = _synthetic_run(tmp_path / "short", 200)             # not one epoch in 100 steps
    code, _, err = run_cli(["plot", a, short, "--x", "epoch", "-o", tmp_path / "x.png"], monkeypatch, capsys)
    assert code == 2 and "--x epoch" in err and "short" in err and len(err.strip().splitlines()) == 1
    assert not (tmp_path / "x.png").exists()


def test_lr_decay_lines_include_a_stop_that_a_resume_turned_into_a_decay():
    from sentvae.plot import lr_decays
    va = [{"step": 100, "lr": 1e-3, "decision": "continue"},
          {"step": 200, "lr": 1e-3, "decision": "decay"},
          {"step": 300, "lr": 5e-4, "decision": "stop"},        # resumed with more decays allowed:
          {"step": 400, "lr": 2.5e-4, "decision": "continue"},  # it went on at half the rate
          {"step": 500, "lr": 2.5e-4, "decision": "stop"}]      # the real end
    assert lr_decays(va) == [200, 300]
    assert lr_decays(va[:3]) == [200]                         # a stop not (yet) resumed is no decay


def test_a_short_stage_is_scaled_to_its_validations_not_its_noisy_train_curve():
    """A last stage of ten validations a tenth of a nat apart, with a train curve (dropout on, one
    log interval) swinging by tens of nats: the -ELBO and reconstruction axes show the validation
    differences; the train curve runs off the axes."""
    import matplotlib.pyplot as plt
    from sentvae.plot import draw_training

    train = [{"step": s, "epoch": s // 50, "elbo": 104.0 + (30.0 if s % 20 else 2.0), "rec": 101.0 + (30.0 if s % 20 else 2.0),
              "kl": 2.2, "kl_weight": 1.0, "lr": 1e-4, "tokens_per_s": 1000.0} for s in range(5, 501, 5)]
    valid = [{"step": s, "elbo": 104.3 - s / 5000, "rec": 102.0 - s / 5000, "kl": 2.2, "au": 32, "lr": 1e-4,
              "decision": "continue"} for s in range(50, 501, 50)]
    fig = draw_training([{"name": "stage", "train": train, "valid": valid, "aggressive": []}], "epoch")
    try:
        for ax, key in ((fig.axes[0], "elbo"), (fig.axes[1], "rec")):
            lo, hi = ax.get_ylim()
            values = [r[key] for r in valid if r["step"] >= 250]    # the first ones may run off the top
            assert lo <= min(values) and max(values) <= hi, key
            assert hi - lo < 1.0, (key, lo, hi)     # the 0.09-nat fall fills the panel, not a 30-nat one
    finally:
        plt.close(fig)


@pytest.mark.parametrize("line,needle", [
    (b'{"split": "train", "step": 5, "epoch": 0, "elbo": 1.0, "rec": 1.0, "kl": 0.0, "lr": 0.001}\xff\n',
     "line 2: not a metrics line (not valid UTF-8, byte 91)"),
    (b'{"split": "train", "step": 5, "elbo": 1.0, "rec": 1.0}\n', "line 2: not a metrics line (no 'kl')"),
    (b'{"split": "valid", "step": 5, "elbo": NaN, "rec": 1.0, "kl": 0.0}\n', "line 2: not a metrics line ('elbo' is nan"),
    (b'{"split": "train", "step": 5, "elbo": 1.0, "rec": 1.0, "kl": Infinity}\n', "line 2: not a metrics line ('kl' is inf"),
    (b'{"split": "train", "step": 5, "elbo": "low", "rec": 1.0, "kl": 0.0}\n', "line 2: not a metrics line ('elbo' is 'low'"),
    (b'{"split": "train", "step": 5, "elbo": 1.0, "rec": 1.0, "kl": 0.0, "lr": null}\n', "line 2: not a metrics line ('lr' is None"),
    (b'{"split": "train", "step": "5", "elbo": 1.0, "rec": 1.0, "kl": 0.0}\n', "line 2: not a metrics line ('step' is '5'"),
    (b'{"split": "train", "step": 5, "epoch": -1, "elbo": 1.0, "rec": 1.0, "kl": 0.0}\n', "line 2: not a metrics line ('epoch' is -1"),
    (b'{"split": "train", "step": true, "elbo": 1.0, "rec": 1.0, "kl": 0.0}\n', "line 2: not a metrics line ('step' is True"),
    (b'[1, 2]\n', "line 2: not a metrics line (not a JSON object)"),
    (b'{"step": 5}\n', "line 2: not a metrics line (no 'split')"),
    (b'{"split": "train", "step": 1' + b'0' * 5000 + b'}\n', "line 2: not a metrics line (not JSON"),
    (b'[' * 100000 + b'\n', "line 2: not a metrics line (not JSON"),
], ids=["not-utf8", "missing", "nan", "infinity", "string", "null", "string-step", "negative-epoch", "bool-step",
        "not-object", "no-split", "huge-int", "deep-nesting"])
def test_metrics_lines_that_are_not_what_train_writes_are_one_line(line, needle, trained, tmp_path, monkeypatch, capsys):
    out, _ = trained
    run = tmp_path / "run"
    run.mkdir()
    first = (out / "metrics.jsonl").read_bytes().splitlines(keepends=True)[0]
    (run / "metrics.jsonl").write_bytes(first + line + first)
    for x in ("step", "epoch"):
        code, stdout, err = run_cli(["plot", run, "-o", tmp_path / "x.png", "--x", x], monkeypatch, capsys)
        assert code == 2 and needle in err and str(run / "metrics.jsonl") in err, err
        assert len(err.strip().splitlines()) == 1 and stdout == "" and not (tmp_path / "x.png").exists()


def test_an_output_below_a_file_says_it_is_a_file(trained, tmp_path, monkeypatch, capsys):
    out, _ = trained
    (tmp_path / "f").write_text("x")
    for target in (tmp_path / "f" / "x.png", tmp_path / "f" / "deeper" / "x.png"):
        code, stdout, err = run_cli(["plot", out, "-o", target], monkeypatch, capsys)
        assert code == 2 and f"{tmp_path / 'f'} is a file, not a folder" in err, err
        assert "does not exist" not in err and len(err.strip().splitlines()) == 1


def test_a_failed_write_leaves_the_figure_already_there_whole(trained, tmp_path, monkeypatch, capsys):
    import errno
    import matplotlib.figure
    out, _ = trained
    target = tmp_path / "curves.png"
    code, _, err = run_cli(["plot", out, "-o", target], monkeypatch, capsys)
    assert code == 0, err
    before = target.read_bytes()
    real = matplotlib.figure.Figure.savefig

    def full(self, f, *a, **k):
        real(self, f, *a, **k)                        # the figure written, then the disk fills
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(matplotlib.figure.Figure, "savefig", full)
    code, stdout, err = run_cli(["plot", out, "-o", target, "--x", "epoch"], monkeypatch, capsys)
    assert code == 1 and "cannot write (No space left on device)" in err and len(err.strip().splitlines()) == 1
    assert target.read_bytes() == before and [p.name for p in tmp_path.iterdir()] == ["curves.png"]
