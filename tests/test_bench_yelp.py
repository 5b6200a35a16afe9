"""bench/yelp_transfer.py on a tiny Yelp-shaped folder whose answers are known."""

import json
import random
import sys
from pathlib import Path

import pytest

BENCH = Path(__file__).resolve().parent.parent / "bench"
sys.path.insert(0, str(BENCH))
import yelp_transfer  # noqa: E402

FILLER = "the food was service staff place really very our table today and it".split()
WORD = {0: "bad", 1: "good"}
N_TEST = 6


def _sentence(r, label):
    words = r.sample(FILLER, 4)
    words.insert(r.randrange(5), WORD[label])
    return " ".join(words) + " ."


@pytest.fixture(scope="module")
def yelp(tmp_path_factory):
    d = tmp_path_factory.mktemp("yelp")
    r = random.Random(0)
    for split, n in (("train", 80), ("valid", 20), ("test", N_TEST)):
        for label in (0, 1):
            (d / f"{split}.{label}").write_text("".join(_sentence(r, label) + "\n" for _ in range(n)))
    (d / "outputs").mkdir()
    for label in (0, 1):
        src = (d / f"test.{label}").read_text().splitlines()
        flipped = [s.replace(WORD[label], WORD[1 - label]) for s in src]
        # the human rewrite: the word flipped, written as a person would ("Good" capitalised, "x." glued)
        refs = [f.capitalize().replace(" .", ".") for f in flipped]
        (d / f"reference.{label}").write_text("".join(f"{s}\t{h}\n" for s, h in zip(src, refs)))
        for _, suffix in yelp_transfer.RELEASED:
            # every released system copies its source, except "label", which flips the word
            out = flipped if suffix == "label" else src
            (d / "outputs" / f"test.{label}.{suffix}").write_text(
                "".join(f"{s}\t{o}\t{label}\n" for s, o in zip(src, out)))
    return d


def _rows(capsys):
    lines = capsys.readouterr().out.strip().splitlines()
    assert lines[0].startswith("| system | acc | acc ->pos / ->neg | BLEU (human) |")
    return {c[1].strip(): c[2:-1] for c in (line.split("|") for line in lines[2:] if line.startswith("|"))}


def test_table_of_released_and_our_systems(yelp, tmp_path, capsys):
    ours = tmp_path / "ours"
    ours.mkdir()
    for label in (0, 1):   # one output per line: a system that writes the word "good" everywhere
        src = (yelp / f"test.{label}").read_text().splitlines()
        (ours / f"test.{label}.allgood").write_text("".join(s.replace("bad", "good") + "\n" for s in src))
    judge = tmp_path / "judge.npz"
    code = yelp_transfer.main(["--yelp", str(yelp), "--judge", str(judge), "--outputs", str(ours),
                               "--json", str(tmp_path / "rows.json")])
    assert code == 0 and judge.exists()                      # trained once, then saved
    rows = _rows(capsys)
    assert len(rows) == 2 + 6 + 1
    copied = rows["source copied unchanged"]
    assert float(copied[0]) == 0.0 and copied[1].strip() == "0.000 / 0.000" and float(copied[3]) == 100.0
    # DeleteOnly's stand-in flips every word: the judge agrees, and it matches the normalised rewrites
    delete_only = rows["DeleteOnly (Li et al. 2018) [label]"]
    assert float(delete_only[0]) == 1.0 and float(delete_only[2]) == 100.0
    assert float(rows["human rewrites (Li et al. 2018)"][0]) == 1.0
    assert rows["human rewrites (Li et al. 2018)"][2].strip() == "-"
    assert float(rows["ours/allgood"][0]) == 0.5             # right on the negative half only
    assert rows["ours/allgood"][1].strip() == "1.000 / 0.000"
    saved = json.loads((tmp_path / "rows.json").read_text())
    assert [r["system"] for r in saved["rows"]][-1] == "ours/allgood"
    # the second run loads the saved judge and prints the same table
    assert yelp_transfer.main(["--yelp", str(yelp), "--judge", str(judge), "--outputs", str(ours)]) == 0
    assert _rows(capsys) == rows


def test_misaligned_outputs_are_one_line_naming_file_and_line(yelp, tmp_path, capsys):
    ours = tmp_path / "ours"
    ours.mkdir()
    for label in (0, 1):
        src = (yelp / f"test.{label}").read_text().splitlines()
        src[2] = "another sentence ."
        (ours / f"test.{label}.x").write_text("".join(f"{s}\tout\t{label}\n" for s in src))
    (ours / "test.0.short").write_text("one line\n")
    (ours / "test.1.short").write_text("one line\n")
    code = yelp_transfer.main(["--yelp", str(yelp), "--judge", str(tmp_path / "j.npz"), "--outputs", str(ours)])
    err = capsys.readouterr().err.strip().splitlines()[-1]
    assert code == 2 and err.endswith(f"test.0.short: 1 lines, test.0 has {N_TEST}")
    (ours / "test.0.short").unlink()
    (ours / "test.1.short").unlink()
    code = yelp_transfer.main(["--yelp", str(yelp), "--judge", str(tmp_path / "j.npz"), "--outputs", str(ours)])
    err = capsys.readouterr().err.strip().splitlines()[-1]
    assert code == 2 and err.endswith("test.0.x line 3: its source is not test.0's line 3")


def test_the_judge_s_C_is_the_one_best_on_valid(yelp, tmp_path, monkeypatch):
    from sentvae.judge import Judge
    # on this tiny set every C is perfect; stand in validation accuracies that tell them apart
    valid_acc = {0.25: 0.5, 1.0: 0.9, 8.0: 0.7}
    monkeypatch.setattr(yelp_transfer, "C_GRID", tuple(valid_acc))
    monkeypatch.setattr(Judge, "accuracy", lambda self, texts, targets: valid_acc[self.settings["C"]])
    judge = yelp_transfer.train_judge(yelp, tmp_path / "j.npz", log=lambda msg: None)
    assert judge.settings["C"] == 1.0
    assert Judge.load(tmp_path / "j.npz").settings["C"] == 1.0


def test_the_operating_point_is_chosen_by_validation_alone():
    """The highest validation self-BLEU among points reaching accuracy 0.90; else the best geometric
    mean. Test figures (acc, bleu) never enter the choice."""
    import yelp_tradeoff
    p = lambda name, va, vb, acc=0.0, bleu=0.0: {"system": name, "valid_acc": va, "valid_self_bleu": vb,  # noqa: E731
                                                 "acc": acc, "bleu": bleu}
    points = [p("a", 0.95, 10.0), p("b", 0.91, 30.0, acc=0.1), p("c", 0.85, 60.0, acc=1.0, bleu=99.0)]
    assert yelp_tradeoff.choose(points)["system"] == "b"
    points = [p("a", 0.50, 10.0), p("b", 0.20, 40.0), p("c", 0.80, 2.0, acc=1.0, bleu=99.0)]
    assert yelp_tradeoff.choose(points)["system"] == "b"          # sqrt(.2 x 40) = 2.8 > sqrt(.5 x 10) = 2.2


def test_tradeoff_sweeps_the_transfer_strength_of_a_labelled_model(yelp, tmp_path, capsys):
    """bench/yelp_tradeoff.py: each (model, S) point scored as yelp_transfer scores the released
    systems; S = 0 is the model's reconstruction, S = 1 its plain transfer; the figure written."""
    import sentvae
    import yelp_tradeoff
    run = tmp_path / "run"
    sentvae.train(data=[f"{yelp}/train.0@sentiment=negative", f"{yelp}/train.1@sentiment=positive"],
                  valid=[f"{yelp}/valid.0@sentiment=negative", f"{yelp}/valid.1@sentiment=positive"],
                  out=str(run), model_type="word", vocab_size=100, emb_dim=16, hidden=16, latent=4, dropout=0.0,
                  epochs=0, max_steps=30, eval_every=30, log_every=30)
    out, png, rows_json = tmp_path / "out", tmp_path / "tradeoff.png", tmp_path / "points.json"
    code = yelp_tradeoff.main([f"tiny={run / 'best.pt'}", "--strengths", "0,1", "--yelp", str(yelp),
                               "--judge", str(tmp_path / "j.npz"), "--out", str(out), "--plot", str(png),
                               "--json", str(rows_json)])
    assert code == 0
    rows = _rows(capsys)
    assert len(rows) == 2 + 6 + 2 and {"tiny S=0", "tiny S=1"} <= set(rows)
    model = sentvae.load(run / "best.pt", device="cpu")
    for label, target in ((0, "positive"), (1, "negative")):
        src = (yelp / f"test.{label}").read_text().splitlines()
        assert (out / f"test.{label}.tiny-s0").read_text().splitlines() == model.reconstruct(src)
        assert (out / f"test.{label}.tiny-s1").read_text().splitlines() == model.reconstruct(
            src, label={"sentiment": target})
    saved = json.loads(rows_json.read_text())
    points = saved["points"]
    assert [(p["model"], p["strength"]) for p in points] == [("tiny", 0.0), ("tiny", 1.0)]
    assert saved["chosen"] in {"tiny S=0", "tiny S=1"}
    assert png.stat().st_size > 10_000 and png.read_bytes()[:4] == b"\x89PNG"
    code = yelp_tradeoff.main(["tiny", "--yelp", str(yelp), "--judge", str(tmp_path / "j.npz"), "--out", str(out)])
    assert code == 2 and "NAME=CKPT" in capsys.readouterr().err


def test_tradeoff_refuses_a_model_without_the_sentiment_label_before_scoring_anything(yelp, tmp_path, capsys):
    import sentvae
    import yelp_tradeoff
    run = tmp_path / "plain"
    sentvae.train(data=[f"{yelp}/train.0"], valid=[f"{yelp}/valid.0"], out=str(run), model_type="word",
                  vocab_size=100, emb_dim=16, hidden=16, latent=4, epochs=0, max_steps=3, eval_every=3)
    judge = tmp_path / "j.npz"
    code = yelp_tradeoff.main([f"plain={run / 'best.pt'}", "--yelp", str(yelp), "--judge", str(judge),
                               "--out", str(tmp_path / "out")])
    assert code == 2 and "not a model with a 'sentiment' label" in capsys.readouterr().err
    assert not judge.exists()            # refused before the judge was trained or any system scored
