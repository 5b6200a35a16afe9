"""A labelled model (sentvae/labelled.py, semisup.py, label_codes.py, cli_labels.py): Kingma et al.
2014's M2 on the bundled corpus's labels.

- the exact marginalisation of missing labels against explicit enumeration of their values;
- conditioning judged by the corpus's rule judge (data/corpus_labels.py), not by the model: a
  tiny model trained briefly must put the asked value in its samples and transfers well above
  chance (a model that ignores c has a balanced accuracy of exactly 1/V in expectation);
- the vocabulary in the checkpoint, `classify` (JSON lines, streaming), `eval`'s accuracy;
- the refusals: one line, exit 2.
"""

import itertools
import json
import math
import sys
from pathlib import Path

import pytest
import torch

from conftest import TINY_MODEL, run_cli

ROOT = Path(__file__).resolve().parent.parent
DATA = ROOT / "data"
sys.path.insert(0, str(DATA))
from corpus_labels import judge  # noqa: E402

ATTRS = ("mood", "tense")


def _rows(split, n=None):
    lines = (DATA / f"{split}.jsonl").read_text(encoding="utf-8").splitlines()
    return [json.loads(line) for line in lines[:n]]


def _write(path, rows):
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return path


# --- the exact marginalisation, against explicit enumeration

def _tiny_labelled_model(sizes=(2, 3), counts=None):
    """counts: the joint prior's counts of each combination (C order), or None: the uniform prior."""
    from sentvae.config import ModelConfig
    from sentvae.label_vocab import LabelVocab
    from sentvae.model import build_model
    torch.manual_seed(0)
    vocab = LabelVocab({f"a{i}": [f"v{j}" for j in range(v)] for i, v in enumerate(sizes)})
    labels = {**vocab.to_dict(), **({"counts": counts} if counts is not None else {})}
    model = build_model(ModelConfig(vocab_size=30, labels=labels, label_dim=4,
                                    label_prior="uniform" if counts is None else "joint", **TINY_MODEL))
    return model.eval(), vocab


def _batch(B=5, T=7):
    from sentvae.tokenizer import BOS, EOS
    g = torch.Generator().manual_seed(1)
    tokens = torch.randint(4, 30, (B, T + 1), generator=g)
    tokens[:, 0] = BOS
    tokens[:, -1] = EOS
    return tokens, torch.full((B,), T)


@pytest.mark.parametrize("counts", [None, [4, 0, 1, 2, 7, 0]], ids=["uniform", "joint"])
def test_missing_labels_are_marginalised_exactly_over_every_value(counts):
    from sentvae.labelled import label_terms
    from sentvae.noise import SeededNoise
    model, _ = _tiny_labelled_model((2, 3), counts)
    n = torch.tensor(counts or [0] * 6, dtype=torch.float64)
    p = ((n + 1) / (n.sum() + 6)).view(2, 3)          # p(c): add-one smoothed counts (uniform: all equal)
    tokens, lengths = _batch()
    labels = torch.tensor([[0, 1], [-1, 2], [1, -1], [-1, -1], [-1, 0]])     # every pattern
    S = 2
    with torch.no_grad():
        q, log_qc = model.infer(tokens[:, 1:], lengths)
        z, _ = q.rsample(SeededNoise(0, range(5), 0, S))                    # (B, S, nz)
        terms = label_terms(model, log_qc, z, tokens[:, :-1], tokens[:, 1:], labels)
        expected, marginal = terms.expected(), terms.marginal()            # (B, S)
        for b, s in itertools.product(range(5), range(S)):
            own = labels[b].tolist()
            free = [a for a, v in enumerate(own) if v < 0]
            e, parts = 0.0, []
            p_own = float(p[tuple(slice(None) if v < 0 else v for v in own)].sum())     # p(c_own)
            for values in itertools.product(*(range(model.conditioner.sizes[a]) for a in free)):
                c = list(own)
                log_q = 0.0
                for a, v in zip(free, values):
                    c[a] = v
                    log_q += float(log_qc[a][b, v])
                log_p = math.log(float(p[tuple(c)]) / p_own)                 # log p(c_missing | c_own)
                ll = float(model.log_likelihood(z[b, s][None], tokens[b, :-1][None], tokens[b, 1:][None],
                                                torch.tensor([c]))[0])
                e += math.exp(log_q) * ll
                parts.append(log_p + ll)
            assert float(expected[b, s]) == pytest.approx(e, rel=1e-5, abs=1e-4), (b, s)
            assert float(marginal[b, s]) == pytest.approx(float(torch.logsumexp(torch.tensor(parts), 0)),
                                                          rel=1e-5, abs=1e-4), (b, s)
        # the model's forward uses the same terms: its ll is M2's expectation
        from sentvae.corpus import Batch
        out = model(Batch(tokens, lengths, list(range(5)), labels), samples=S,
                    noise=SeededNoise(0, range(5), 0, S))
        assert torch.allclose(out.ll, expected, atol=1e-4)


def test_the_label_terms_kl_and_cross_entropy_match_torch_distributions():
    from torch.distributions import Categorical, kl_divergence
    from sentvae.labelled import label_terms
    from sentvae.noise import SeededNoise
    from sentvae.semisup import label_loss
    model, _ = _tiny_labelled_model((2, 3))
    tokens, lengths = _batch()
    labels = torch.tensor([[0, 1], [-1, 2], [1, -1], [-1, -1], [-1, 0]])
    with torch.no_grad():
        q, log_qc = model.infer(tokens[:, 1:], lengths)
        z, _ = q.rsample(SeededNoise(0, range(5), 0, 1))
        terms = label_terms(model, log_qc, z, tokens[:, :-1], tokens[:, 1:], labels)
        loss, kl, _ = label_loss(terms, alpha=0.5)
    want_kl = torch.zeros(5)
    for a, lq in enumerate(log_qc):
        uniform = Categorical(logits=torch.zeros_like(lq))
        want_kl += torch.where(labels[:, a] < 0, kl_divergence(Categorical(logits=lq), uniform), 0.0)
    assert torch.allclose(kl, want_kl, atol=1e-6)
    # alpha * sum over attributes of the mean -log q(label|x) over the sentences labelled for it
    ce = sum(-torch.stack([log_qc[a][b, labels[b, a]] for b in range(5) if labels[b, a] >= 0]).mean()
             for a in range(2))
    assert float(loss) == pytest.approx(float(want_kl.mean() + 0.5 * ce), rel=1e-5)


# --- a tiny model trained briefly, judged by the rules

@pytest.fixture(scope="module")
def labelled_run(tmp_path_factory):
    """300 steps on 2,000 fully labelled sentences (mood, tense): ~6 s on 2 idle cores."""
    import sentvae
    d = tmp_path_factory.mktemp("labelled")
    train = _write(d / "train.jsonl", _rows("train", 2000))
    valid = _write(d / "valid.jsonl", _rows("valid", 200))
    sentvae.train(data=str(train), valid=str(valid), out=str(d / "run"), label_field=list(ATTRS),
                  model_type="word", vocab_size=1000, emb_dim=32, hidden=64, latent=8, dropout=0.0,
                  max_tokens=800, epochs=0, max_steps=300, eval_every=300, log_every=100, max_len=30)
    return d


def _balanced_accuracy(outputs: dict) -> float:
    """outputs: asked value -> sentences. The mean over values of the share the judge reads as asked;
    a decoder that ignores c gives each value the same output distribution: 1/V in expectation."""
    attr, _ = next(iter(outputs))
    return sum(sum(judge(s)[attr] == v for s in texts) / len(texts) for (_, v), texts in outputs.items()) / len(outputs)


def test_the_vocabulary_lives_in_the_checkpoint(labelled_run):
    import sentvae
    ckpt = torch.load(labelled_run / "run" / "best.pt", weights_only=True)
    values = {a: sorted({r[a] for r in _rows("train", 2000)}) for a in ATTRS}
    assert ckpt["model_config"]["labels"] == {"attributes": [[a, values[a]] for a in ATTRS]}
    assert sentvae.load(labelled_run / "run" / "best.pt").labels.values == values


def test_info_names_the_labels_and_the_classifiers_accuracy(labelled_run, monkeypatch, capsys):
    code, out, err = run_cli(["info", labelled_run / "run" / "best.pt"], monkeypatch, capsys)
    values = {a: sorted({r[a] for r in _rows("train", 2000)}) for a in ATTRS}
    line = next(x for x in out.splitlines() if x.startswith("labels "))
    assert code == 0 and "; ".join(f"{a}: {' | '.join(values[a])}" for a in ATTRS) in line, out
    assert "{" not in out.split("labels ")[0], "the label vocabulary printed raw in the model line"
    valid = next(x for x in out.splitlines() if x.startswith("validation "))
    assert all(f"acc({a}) " in valid for a in ATTRS), valid


@pytest.mark.parametrize("attr", ATTRS)
def test_samples_follow_the_asked_label_by_the_rule_judge(labelled_run, attr):
    import sentvae
    model = sentvae.load(labelled_run / "run" / "best.pt")
    values = model.labels.values[attr]
    outputs = {(attr, v): model.sample(30, seed=1, label={attr: v}) for v in values}
    assert _balanced_accuracy(outputs) >= 1 / len(values) + 0.4, outputs      # measured 0.82-1.0 (seeds 0-4)


@pytest.mark.parametrize("attr", ATTRS)
def test_reconstruct_with_a_label_transfers_it(labelled_run, attr, monkeypatch, capsys):
    sources = [r["text"] for r in _rows("valid", 40)]
    outputs = {}
    for v in sorted({r[attr] for r in _rows("train", 2000)}):
        code, out, err = run_cli(["reconstruct", "-c", labelled_run / "run" / "best.pt", "--label", f"{attr}={v}",
                                  *sources], monkeypatch, capsys)
        assert code == 0, err
        outputs[(attr, v)] = out.splitlines()
        assert len(outputs[(attr, v)]) == len(sources)
    assert _balanced_accuracy(outputs) >= 1 / len(outputs) + 0.4, outputs


def test_label_strength_moves_the_set_labels_embedding_along_the_line_from_the_reference():
    """--label-strength S: the decoder reads r + S (e(asked) - r) for the set attribute, r the
    sentence's own value's embedding (reconstruct: q(c|x)'s most likely) or the average embedding
    under p(c) (sample); the other attributes keep their own values; S = 1 is the plain request."""
    from sentvae.label_codes import from_classifier, pushed
    model, vocab = _tiny_labelled_model((2, 3))
    log_qc = [torch.log_softmax(torch.tensor([[2.0, 0.0], [0.0, 1.0], [0.5, 0.2]]), 1),
              torch.log_softmax(torch.tensor([[0.0, 3.0, 0.0], [1.0, 0.0, 0.0], [0.0, 0.0, 2.0]]), 1)]
    own = from_classifier(vocab, {}, log_qc)
    assert own.tolist() == [[0, 1], [1, 0], [0, 2]]
    z = torch.randn(3, TINY_MODEL["latent"])
    e0, e1 = (emb.weight.detach() for emb in model.conditioner.embeddings)
    asked = {"a1": 2}
    with torch.no_grad():
        for S in (0.0, 0.5, 1.0, 2.5):
            src = e1[[1, 0, 2]]
            want = torch.cat([z, e0[[0, 1, 0]], src + S * (e1[2] - src)], dim=1)
            assert torch.allclose(model.condition(z, pushed(vocab, asked, own, S)), want, atol=1e-6), S
            mean = e1.mean(0, keepdim=True)
            want = torch.cat([z, e0[[0, 1, 0]], (mean + S * (e1[2] - mean)).expand(3, -1)], dim=1)
            assert torch.allclose(model.condition(z, pushed(vocab, asked, own, S, reference="prior", prior=model.label_prior)), want,
                                  atol=1e-6), S
        assert torch.allclose(model.condition(z, pushed(vocab, asked, own, 1.0)),
                              model.condition(z, from_classifier(vocab, asked, log_qc)), atol=1e-6)
        # sample's path: at S = 1 from the prior's average, exactly the asked value (index decoding)
        drawn = torch.tensor([[0, 2], [1, 2], [0, 2]])                  # from_prior: the asked a1 = 2 set
        assert torch.allclose(model.condition(z, pushed(vocab, asked, drawn, 1.0, reference="prior", prior=model.label_prior)),
                              model.condition(z, drawn), atol=1e-6)


def test_label_strength_zero_reconstructs_and_one_transfers(labelled_run, monkeypatch, capsys):
    ckpt = labelled_run / "run" / "best.pt"
    sources = [r["text"] for r in _rows("valid", 20)]
    runs = {}
    for name, args in (("plain", []), ("transfer", ["--label", "mood=yes-no"]),
                       ("S0", ["--label", "mood=yes-no", "--label-strength", "0"]),
                       ("S1", ["--label", "mood=yes-no", "--label-strength", "1"]),
                       ("S3", ["--label", "mood=yes-no", "--label-strength", "3"])):
        code, out, err = run_cli(["reconstruct", "-c", ckpt, *args, *sources], monkeypatch, capsys)
        assert code == 0, err
        runs[name] = out.splitlines()
    assert runs["S0"] == runs["plain"] and runs["S1"] == runs["transfer"]
    assert runs["S3"] != runs["transfer"]                   # S above 1 is not clamped to the transfer
    for cmd in (["reconstruct", *sources], ["sample", "-n", "3"]):
        code, out, err = run_cli([cmd[0], "-c", ckpt, "--label-strength", "2", *cmd[1:]], monkeypatch, capsys)
        assert code == 2 and out == "" and "--label-strength" in err and len(err.strip().splitlines()) == 1, err


def test_encode_then_decode_at_a_label_strength_equals_reconstruct_at_it(labelled_run, tmp_path, monkeypatch, capsys):
    """`encode | decode --label ... --label-strength S` = `reconstruct --label ... --label-strength S`:
    decode moves a set label from the line's own value (what encode wrote), as reconstruct from q(c|x)'s."""
    ckpt = labelled_run / "run" / "best.pt"
    src = tmp_path / "in.txt"
    src.write_text("".join(r["text"] + "\n" for r in _rows("valid", 20)))
    code, enc, err = run_cli(["encode", "-i", src, "-c", ckpt], monkeypatch, capsys)
    assert code == 0, err
    outs = {}
    for s in ("0", "2"):
        asked = ["--label", "mood=yes-no", "--label-strength", s]
        code, dec, err = run_cli(["decode", "-c", ckpt, *asked], monkeypatch, capsys, stdin=enc)
        assert code == 0, err
        code, rec, err = run_cli(["reconstruct", "-i", src, "-c", ckpt, *asked], monkeypatch, capsys)
        assert code == 0, err
        assert dec == rec
        outs[s] = dec
    code, plain, err = run_cli(["decode", "-c", ckpt], monkeypatch, capsys, stdin=enc)
    assert outs["0"] == plain and outs["2"] != plain       # S = 0: the lines' own labels; S = 2 moves them
    # refused before any input is read (this input would be refused too, for another reason)
    code, out, err = run_cli(["decode", "-c", ckpt, "--label-strength", "2"], monkeypatch, capsys, stdin="not json\n")
    assert code == 2 and out == "" and "give --label" in err


def test_label_strength_on_a_model_without_labels_says_so(unlabelled_ckpt, monkeypatch, capsys):
    for args in (["reconstruct", "a dog ."], ["sample"], ["decode", "-i", "-"]):
        code, out, err = run_cli([*args, "-c", unlabelled_ckpt, "--label-strength", "2"], monkeypatch, capsys,
                                 stdin="")            # decode: refused before its (empty) input is read
        assert code == 2 and out == "" and "--label-strength" in err and "has no labels" in err, (args, err)


def test_sample_label_strength_one_is_the_label_and_above_it_differs(labelled_run):
    import sentvae
    model = sentvae.load(labelled_run / "run" / "best.pt")
    asked = {"mood": "yes-no"}
    plain = model.sample(20, seed=3, label=asked)
    assert model.sample(20, seed=3, label=asked, label_strength=1.0) == plain
    assert model.sample(20, seed=3, label=asked, label_strength=3.0) != plain


def test_interpolate_holds_a_label_along_the_path(labelled_run):
    import sentvae
    model = sentvae.load(labelled_run / "run" / "best.pt")
    a, b = "the dog walked .", "who will see the cat ?"
    held = {v: model.interpolate(a, b, steps=6, label={"mood": v}) for v in model.labels.values["mood"]}
    assert _balanced_accuracy({("mood", v): texts for v, texts in held.items()}) >= 1 / 3 + 0.4, held
    free = model.interpolate(a, b, steps=6)         # unheld: the labels move with z from A's to B's
    assert judge(free[0])["mood"] == "statement" and judge(free[-1])["mood"] == "wh-question", free


def test_interpolate_label_strength_moves_the_held_label_from_the_paths_own_mix(labelled_run, monkeypatch, capsys):
    """interpolate --label-strength S: the decoder reads m_t + S (e(asked) - m_t) for the held
    attribute, m_t the path's own mix of the ends' values at t; S = 0 is the unheld path, 1 the held."""
    import sentvae
    from sentvae.label_codes import from_classifier, path
    from sentvae.latent import infer_texts
    ckpt = labelled_run / "run" / "best.pt"
    model = sentvae.load(ckpt)
    a, b = "the dog walked .", "who will see the cat ?"
    seen = []
    monkeypatch.setattr(model, "_decode", lambda z, c, **kw: seen.append(c) or ["x"] * z.size(0))
    model.interpolate(a, b, steps=5, label={"mood": "yes-no"}, label_strength=2.5)
    _, log_qc = infer_texts(model.net, model.tokenizer, [a, b], device=model.device)
    t = torch.linspace(0, 1, 5)
    mix = path(model.labels, from_classifier(model.labels, {}, log_qc), t)
    m = model.labels.attributes.index("mood")
    target = torch.zeros_like(mix[m])
    target[:, model.labels.values["mood"].index("yes-no")] = 1.0
    for i, (got, own) in enumerate(zip(seen[0], mix)):
        want = own + 2.5 * (target - own) if i == m else own
        assert torch.allclose(got, want, atol=1e-6), model.labels.attributes[i]
    assert not torch.allclose(mix[m][0], mix[m][-1])          # the ends differ in mood: a real path
    monkeypatch.undo()
    runs = {}
    for name, args in (("free", []), ("held", ["--label", "mood=yes-no"]),
                       ("S0", ["--label", "mood=yes-no", "--label-strength", "0"]),
                       ("S1", ["--label", "mood=yes-no", "--label-strength", "1"])):
        code, out, err = run_cli(["interpolate", "-c", ckpt, "--steps", "6", *args, a, b], monkeypatch, capsys)
        assert code == 0, err
        runs[name] = out
    assert runs["S0"] == runs["free"] and runs["S1"] == runs["held"] and runs["held"] != runs["free"]
    code, out, err = run_cli(["interpolate", "-c", ckpt, "--label-strength", "2", a, b], monkeypatch, capsys)
    assert code == 2 and out == "" and "give --label" in err and len(err.strip().splitlines()) == 1, err


def test_classify_writes_one_json_line_per_input_line(labelled_run, monkeypatch, capsys):
    import sentvae
    ckpt = labelled_run / "run" / "best.pt"
    texts = ["did the dog walk ?", "", "the cats will not sleep ."]
    code, out, err = run_cli(["classify", "-c", ckpt, *texts], monkeypatch, capsys)
    assert code == 0, err
    rows = [json.loads(line) for line in out.splitlines()]
    assert [r["text"] for r in rows] == texts
    assert rows[1]["label"] is None and rows[1]["probabilities"] is None
    api = sentvae.load(ckpt).classify([texts[0], texts[2]])
    for row, twin in zip((rows[0], rows[2]), api):
        assert set(row["label"]) == set(ATTRS)
        for attr, probs in row["probabilities"].items():
            assert sum(probs.values()) == pytest.approx(1, abs=1e-5)
            assert row["label"][attr] == max(probs, key=probs.get)
            assert probs == pytest.approx(twin["probabilities"][attr], abs=1e-6)
    assert rows[0]["label"]["mood"] == "yes-no" and rows[2]["label"]["mood"] == "statement", rows


def test_classify_streams_its_input(labelled_run, monkeypatch, capsys):
    """The first batch is classified before the rest of stdin is read."""
    import sentvae.api
    lines = [b"the dog walked .\n"] * 50

    class Stdin:
        read = 0

        def readline(self):
            Stdin.read += 1
            return lines[Stdin.read - 1] if Stdin.read <= len(lines) else b""

    monkeypatch.setattr(sys, "stdin", type("Pipe", (), {"buffer": Stdin(), "isatty": lambda self: False})())
    seen, real = [], sentvae.api.Model.classify
    monkeypatch.setattr(sentvae.api.Model, "classify",
                        lambda self, ts, *a, **k: seen.append((len(ts), Stdin.read)) or real(self, ts, *a, **k))
    code, out, err = run_cli(["classify", "-c", labelled_run / "run" / "best.pt", "--batch-size", "4"],
                             monkeypatch, capsys)
    assert code == 0, err
    assert len(out.splitlines()) == 50
    assert seen[0] == (4, 4) and len(seen) == 13, seen


def test_eval_on_labelled_data_reports_the_classifiers_accuracy(labelled_run, tmp_path, monkeypatch, capsys):
    import sentvae
    ckpt = labelled_run / "run" / "best.pt"
    rows = _rows("test", 60)
    for r in rows[::3]:
        del r["mood"]                    # partly labelled: the accuracy counts the labelled only
    data = _write(tmp_path / "t.jsonl", rows)
    code, out, err = run_cli(["eval", "-c", ckpt, "-d", data, "-k", "2", "--json"], monkeypatch, capsys)
    assert code == 0, err
    result = json.loads(out)
    guesses = sentvae.load(ckpt).classify([r["text"] for r in rows])
    for attr in ATTRS:
        known = [(r, g) for r, g in zip(rows, guesses) if attr in r]
        assert result["labelled"][attr] == len(known)
        assert result["accuracy"][attr] == pytest.approx(sum(g["label"][attr] == r[attr] for r, g in known) / len(known))
    assert result["labelled"]["mood"] == 40


def test_training_is_semi_supervised_on_partly_labelled_rows(tmp_path):
    """Rows without a label train too (their c marginalised): the figures stay finite and the
    labels' KL term, which only unlabelled rows have, is there."""
    import sentvae
    rows = _rows("train", 300)
    for r in rows[1::2]:
        del r["mood"]
    seen = []
    sentvae.train(data=str(_write(tmp_path / "semi.jsonl", rows)), out=str(tmp_path / "run"), label_field=["mood"],
                  model_type="word", vocab_size=500, max_tokens=400, epochs=0, max_steps=4, eval_every=4,
                  log_every=2, on_event=lambda kind, info: seen.append((kind, info)), **TINY_MODEL)
    valid = [info for kind, info in seen if kind == "valid"]
    assert valid and math.isfinite(valid[-1]["elbo"]) and valid[-1]["kl_labels"] > 0, valid


# --- refusals: one line, exit 2

@pytest.fixture(scope="module")
def unlabelled_ckpt(v1):
    return v1["vae"]


def test_an_unknown_label_value_or_attribute_at_generation(labelled_run, monkeypatch, capsys):
    ckpt = labelled_run / "run" / "best.pt"
    for args, needle in ((["sample", "--label", "mood=shouting"], "mood has no value 'shouting'"),
                         (["sample", "--label", "colour=red"], "no label attribute 'colour'"),
                         (["reconstruct", "--label", "tense=later", "a dog ."], "tense has no value 'later'"),
                         (["interpolate", "--label", "mood=x", "a dog .", "a cat ."], "mood has no value 'x'"),
                         (["sample", "--label", "mood"], "expected NAME=VALUE")):
        code, out, err = run_cli([*args, "-c", ckpt], monkeypatch, capsys)
        assert code == 2 and out == "" and needle in err and "--label" in err, (args, err)
        assert len(err.strip().splitlines()) == 1, err


def test_label_on_a_model_without_labels(unlabelled_ckpt, monkeypatch, capsys):
    for args in (["sample", "--label", "mood=yes-no"], ["reconstruct", "--label", "mood=yes-no", "a dog ."],
                 ["classify", "a dog ."]):
        code, out, err = run_cli([*args, "-c", unlabelled_ckpt], monkeypatch, capsys)
        assert code == 2 and out == "" and "has no labels" in err, (args, err)
        assert len(err.strip().splitlines()) == 1, err


def test_training_refusals_name_the_option_or_file(tmp_path, monkeypatch, capsys):
    data = _write(tmp_path / "t.jsonl", _rows("train", 50))
    one = tmp_path / "one.txt"
    one.write_text("the dog walked .\n")
    empty = tmp_path / "empty.txt"
    empty.write_text("")
    for args, needle in ((["--data", data, "--label-field", "colour"], "--label-field colour: no row"),
                         (["--data", f"{one}@s=a", "--data", f"{empty}@s=b"], "no example of s=b"),
                         (["--data", data, "--label-field", "mood", "--objective", "iwae"], "--objective iwae"),
                         (["--data", data, "--label-field", "mood", "--no-latent"], "--no-latent"),
                         (["--data", data, "--label-field", "mood", "--svi-steps", "2"], "--svi-steps"),
                         (["--data", data, "--label-field", "mood", "--latent-type", "categorical"],
                          "--latent-type")):
        code, out, err = run_cli(["train", *args, "--out", tmp_path / "run", "--max-steps", "2"], monkeypatch, capsys)
        assert code == 2 and needle in err, (args, err)
        assert len(err.strip().splitlines()) == 1, err
        assert not (tmp_path / "run").exists()


def test_encoding_alone_is_not_labels(tmp_path, monkeypatch, capsys):
    """--encoding latin-1 without a label option reads the bytes, and trains an unlabelled model:
    --no-latent is not refused as it is with labels."""
    f = tmp_path / "latin1.txt"
    f.write_bytes("\n".join(["le caf\u00e9 est chaud ."] * 20 + ["the dog walked ."] * 20).encode("latin-1") + b"\n")
    code, out, err = run_cli(["train", "--data", f, "--encoding", "latin-1", "--no-latent", "--model-type", "word",
                              "--emb-dim", "16", "--hidden", "16", "--max-steps", "2", "--eval-every", "2",
                              "--out", tmp_path / "run"], monkeypatch, capsys)
    assert code == 0, err
    import sentvae
    model = sentvae.load(tmp_path / "run" / "best.pt")
    assert model.labels is None
    assert "caf\u00e9" in "".join(model.tokenizer.pieces("le caf\u00e9"))     # the bytes read as latin-1
