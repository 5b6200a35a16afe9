"""p(c), a labelled model's prior over its labels (sentvae/label_prior.py, `--label-prior`).

Checked against explicit enumeration of every combination of values and torch.distributions: the
joint table's log-probabilities, the conditional a partly labelled sentence's missing labels are
marginalised under, the label KL of the ELBO, the sampler's frequencies; the uniform prior as the
special case the code had before (the same KL, the same draws); the counts computed from the data
and kept in the checkpoint; `sample --label` keeping the data's dependencies on the bundled corpus;
the refusals (one line, exit 2).
"""

import itertools
import json
import math
from pathlib import Path

import pytest
import torch
from torch.distributions import Categorical

from conftest import run_cli

ROOT = Path(__file__).resolve().parent.parent
SIZES = [2, 3, 2]
COUNTS = [5, 0, 2, 7, 1, 0, 3, 3, 0, 9, 4, 1]          # 12 = 2 x 3 x 2 combinations, some unseen


def _prior(counts=COUNTS):
    from sentvae.label_prior import LabelPrior
    return LabelPrior(SIZES, counts)


def _every():
    return torch.tensor(list(itertools.product(*(range(v) for v in SIZES))))     # (12, 3), C order


def _p(counts=COUNTS):
    """p(c) of each combination in C order: (n_c + 1) / (N + G), add-one smoothed."""
    n = torch.tensor(counts, dtype=torch.float64)
    return (n + 1) / (n.sum() + len(counts))


def test_joint_log_prob_is_the_smoothed_frequency_and_marginals_sum_it():
    prior, every = _prior(), _every()
    want = Categorical(probs=_p()).log_prob(torch.arange(12))
    assert torch.allclose(prior.log_prob(every).double(), want, atol=1e-6)
    for a, v in enumerate(SIZES):
        want = torch.stack([_p()[every[:, a] == k].sum() for k in range(v)]).float()
        assert torch.allclose(prior.marginal(a), want, atol=1e-6)


def test_the_conditional_of_missing_labels_given_the_sentences_own_is_exact():
    from sentvae.labelled import combinations
    labels = torch.tensor([[1, -1, 0], [-1, -1, -1], [0, 2, 1], [-1, 1, -1]])
    for counts in (COUNTS, None):
        prior = _prior(counts)
        p = _p() if counts is not None else torch.full((12,), 1 / 12, dtype=torch.float64)
        rows, combos, _ = combinations(labels, SIZES)
        got = prior.log_conditional(rows, combos, labels)
        every = _every()
        for r in range(rows.numel()):
            own = labels[rows[r]]
            fits = ((own < 0) | (every == own)).all(dim=1)
            this = (every == combos[r]).all(dim=1)
            want = math.log(p[this].sum() / p[fits].sum())
            assert float(got[r]) == pytest.approx(want, abs=1e-5), (counts is None, r)


def _brute_kl(prior_p, log_qc, labels):
    """KL(q(c_missing|x) || p(c_missing | c_own)) by enumerating every combination."""
    every, out = _every(), []
    for b in range(labels.size(0)):
        own = labels[b]
        fits = ((own < 0) | (every == own)).all(dim=1)
        total = 0.0
        for i in fits.nonzero().squeeze(1).tolist():
            c = every[i]
            log_q = sum(float(log_qc[a][b, c[a]]) for a in range(len(SIZES)) if own[a] < 0)
            total += math.exp(log_q) * (log_q - math.log(prior_p[i] / prior_p[fits].sum()))
        out.append(total)
    return torch.tensor(out, dtype=torch.float64)


def test_the_label_kl_is_exact_for_the_joint_and_the_uniform_prior():
    g = torch.Generator().manual_seed(3)
    labels = torch.tensor([[1, -1, 0], [-1, -1, -1], [0, 2, 1], [-1, 1, -1], [-1, 0, 1]])
    log_qc = [torch.log_softmax(torch.randn(5, v, generator=g) * 2, dim=1) for v in SIZES]
    for counts, p in ((COUNTS, _p()), (None, torch.full((12,), 1 / 12, dtype=torch.float64))):
        got = _prior(counts).kl(log_qc, labels)
        want = _brute_kl(p, log_qc, labels)
        assert torch.allclose(got.double(), want, atol=1e-5), (counts is None, got, want)
        assert float(got[2]) == 0.0                      # every label known: nothing to diverge
    # a q equal to the conditional prior has KL 0 (attribute 1 alone missing: q_1 = p(c_1 | own))
    prior, p = _prior(), _p()
    own = torch.tensor([[1, -1, 0]])
    cond = torch.stack([p[(_every() == torch.tensor([1, k, 0])).all(dim=1)].sum() for k in range(3)])
    log_qc = [torch.zeros(1, 2), (cond / cond.sum()).log().float().unsqueeze(0), torch.zeros(1, 2)]
    assert float(prior.kl(log_qc, own)) == pytest.approx(0.0, abs=1e-6)


def test_joint_draws_follow_the_conditional_and_their_stream_not_the_asked_attributes():
    prior, p, every = _prior(), _p(), _every()
    n = 40_000
    known = torch.tensor([[-1, 2, -1]] * n)
    drawn = prior.sample(known, torch.Generator().manual_seed(0))
    assert (drawn[:, 1] == 2).all()
    fits = every[:, 1] == 2
    want = p[fits] / p[fits].sum()                                     # 4 combinations
    got = torch.stack([(drawn == c).all(dim=1).double().mean() for c in every[fits]])
    assert torch.allclose(got, want, atol=4 * math.sqrt(0.25 / n)), (got, want)
    # the generator moves the same way whatever is asked: later draws do not depend on it
    g1, g2 = torch.Generator().manual_seed(5), torch.Generator().manual_seed(5)
    prior.sample(torch.tensor([[-1, -1, -1]] * 7), g1)
    prior.sample(torch.tensor([[0, -1, 1]] * 7), g2)
    assert torch.equal(torch.rand(3, generator=g1), torch.rand(3, generator=g2))


def test_uniform_draws_are_the_independent_draws_sample_made_before():
    from sentvae.label_prior import LabelPrior
    known = torch.tensor([[-1, 1, -1]] * 9)
    got = LabelPrior(SIZES).sample(known, torch.Generator().manual_seed(4))
    g = torch.Generator().manual_seed(4)
    want = torch.stack([torch.randint(v, (9,), generator=g) for v in SIZES], dim=1)
    want[:, 1] = 1
    assert torch.equal(got, want)


def test_joint_counts_count_fully_labelled_rows_and_refuse_what_says_nothing():
    import numpy as np
    from sentvae.errors import SentvaeError
    from sentvae.label_prior import joint_counts
    labels = np.array([[0, 1, 1], [0, 1, 1], [1, 2, 0], [-1, 0, 0], [1, 0, -1]])
    counts = joint_counts(labels, SIZES, "x.jsonl")
    want = [0] * 12
    want[0 * 6 + 1 * 2 + 1] = 2
    want[1 * 6 + 2 * 2 + 0] = 1
    assert counts == want
    with pytest.raises(SentvaeError, match="x.jsonl has every label"):
        joint_counts(np.array([[0, -1, 1]]), SIZES, "x.jsonl")
    with pytest.raises(SentvaeError, match="more than 10,000"):
        joint_counts(np.zeros((1, 6), dtype=np.int64), [10] * 6, "x.jsonl")


# --- through the command line, on the bundled corpus's labels

@pytest.fixture(scope="module")
def joint_run(tmp_path_factory):
    """A few steps with --label-prior joint on the bundled corpus's aspect and mood, a third of the
    sentences unlabelled for mood (so training marginalises it under p(mood | aspect))."""
    d = tmp_path_factory.mktemp("joint")
    rows = [json.loads(line) for line in (ROOT / "data" / "train.jsonl").read_text().splitlines()[:1500]]
    for i, r in enumerate(rows):
        if i % 3 == 0:
            del r["mood"]
    (d / "train.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    import sentvae
    sentvae.train(data=str(d / "train.jsonl"), label_field=["aspect", "mood"], label_prior="joint",
                  out=str(d / "run"), model_type="word", vocab_size=500, emb_dim=16, hidden=32, latent=4,
                  max_steps=20, epochs=0, eval_every=20, max_tokens=600, max_len=30)
    return d, rows


def test_the_counts_live_in_the_checkpoint_and_sample_keeps_the_datas_dependencies(joint_run, monkeypatch, capsys):
    import sentvae
    from sentvae.label_codes import from_prior
    d, rows = joint_run
    ckpt = torch.load(d / "run" / "best.pt", weights_only=True)
    labels = ckpt["model_config"]["labels"]
    assert ckpt["model_config"]["label_prior"] == "joint"
    values = dict(labels["attributes"])
    # the rows trained on: without --valid, 5% (75 of 1,500) are held out, as sentvae/corpus.py's
    # split_corpus draws them; p(c) must not count those
    import numpy as np
    from sentvae.corpus import split_corpus
    held = set(np.random.default_rng([0, 7919]).permutation(len(rows))[:75].tolist())
    assert split_corpus.__defaults__ == (0, 0.05, 1000)         # (the rule reproduced here)
    full = [(values["aspect"].index(r["aspect"]), values["mood"].index(r["mood"]))
            for i, r in enumerate(rows) if "mood" in r and i not in held]
    want = [sum(1 for f in full if f == (a, m)) for a in range(3) for m in range(3)]
    assert labels["counts"] == want
    model = sentvae.load(d / "run" / "best.pt")
    prog = {"aspect": values["aspect"].index("progressive")}
    wh = values["mood"].index("wh-question")
    drawn = from_prior(model.labels, model.net.label_prior, prog, 3000, torch.Generator().manual_seed(0))
    assert (drawn[:, 0] == prog["aspect"]).all()
    assert float((drawn[:, 1] == wh).double().mean()) < 0.02      # the data has no progressive wh-question
    from sentvae.label_prior import LabelPrior                    # (the uniform prior asks a third of the time)
    uniform = from_prior(model.labels, LabelPrior([3, 3]), prog, 3000, torch.Generator().manual_seed(0))
    assert abs(float((uniform[:, 1] == wh).double().mean()) - 1 / 3) < 0.04
    assert len(model.sample(4, label={"aspect": "progressive"})) == 4
    code, out, _ = run_cli(["info", d / "run" / "best.pt"], monkeypatch, capsys)
    seen = sum(1 for a in range(3) for m in range(3) if want[a * 3 + m])
    assert code == 0 and f"p(c) joint ({seen} of the 9 combinations" in out


def test_label_prior_joint_without_labels_is_refused_naming_the_flag(tmp_path, monkeypatch, capsys):
    code, _, err = run_cli(["train", "--label-prior", "joint", "--out", tmp_path / "run", "--max-steps", "1"],
                           monkeypatch, capsys)
    assert code == 2
    assert "--label-prior" in err and len(err.strip().splitlines()) == 1
    assert not (tmp_path / "run").exists()


def test_one_attribute_joint_prior_is_its_smoothed_class_frequencies():
    from sentvae.label_prior import LabelPrior
    prior = LabelPrior([3], [5, 1, 0])
    p = torch.tensor([6.0, 2.0, 1.0]) / 9
    assert torch.allclose(prior.marginal(0), p)
    log_q = [torch.log_softmax(torch.tensor([[1.0, 0.0, -1.0], [0.0, 0.0, 0.0]]), dim=1)]
    labels = torch.tensor([[-1], [2]])
    want = (log_q[0][0].exp() * (log_q[0][0] - p.log())).sum()
    assert torch.allclose(prior.kl(log_q, labels), torch.stack([want, torch.tensor(0.0)]), atol=1e-6)
    drawn = prior.sample(torch.full((30_000, 1), -1), torch.Generator().manual_seed(1))[:, 0]
    assert torch.allclose(torch.bincount(drawn, minlength=3).float() / 30_000, p, atol=0.015)


def test_sample_strength_starts_from_the_joint_priors_marginal():
    """sample --label-strength S: the asked attribute's reference is its marginal under the model's p(c)."""
    from sentvae.label_codes import pushed
    from sentvae.label_vocab import LabelVocab
    vocab = LabelVocab({"a": ["x", "y"], "b": ["p", "q", "r"], "c": ["u", "v"]})
    prior = _prior()
    own = torch.tensor([[0, 1, 1], [1, 2, 0]])
    rows = pushed(vocab, {"b": 2}, own, 0.0, reference="prior", prior=prior)
    assert torch.allclose(rows[1], prior.marginal(1).expand(2, 3))
    assert not torch.allclose(prior.marginal(1), torch.full((3,), 1 / 3))       # (not the uniform average)
    assert torch.equal(rows[0], torch.tensor([[1.0, 0.0], [0.0, 1.0]]))        # the others keep their values


def test_a_config_saved_before_the_label_prior_loads_as_uniform():
    from sentvae.config import ModelConfig
    from sentvae.model import build_model
    labels = {"attributes": [["a", ["x", "y"]], ["b", ["p", "q", "r"]]]}
    old = ModelConfig(vocab_size=30, labels=labels, emb_dim=8, hidden=8, latent=2).to_dict()
    del old["label_prior"]
    model = build_model(ModelConfig.from_dict(old))
    assert model.label_prior.kind == "uniform"


def test_init_from_counts_its_own_data_and_may_change_the_prior(joint_run, tmp_path, monkeypatch, capsys):
    d, rows = joint_run
    few = tmp_path / "few.jsonl"
    few.write_text("".join(json.dumps(r) + "\n" for r in rows[:300]))
    common = ["--data", few, "--valid", few, "--label-field", "aspect", "--label-field", "mood", "--max-steps", "2",
              "--epochs", "0", "--eval-every", "2", "--init-from", d / "run" / "best.pt", "--quiet"]
    code, _, err = run_cli(["train", *common, "--out", tmp_path / "joint"], monkeypatch, capsys)
    assert code == 0, err
    counts = torch.load(tmp_path / "joint" / "best.pt", weights_only=True)["model_config"]["labels"]["counts"]
    assert sum(counts) == sum(1 for r in rows[:300] if "mood" in r)
    code, _, err = run_cli(["train", *common, "--label-prior", "uniform", "--out", tmp_path / "uniform"],
                           monkeypatch, capsys)
    assert code == 0, err
    cfg = torch.load(tmp_path / "uniform" / "best.pt", weights_only=True)["model_config"]
    assert cfg["label_prior"] == "uniform" and "counts" not in cfg["labels"]
