"""--estimator gumbel for a labelled model (sentvae/labelled.py relaxed_terms): a sentence's missing
labels as one Gumbel-softmax sample of q(c|x), one decoder pass, instead of M2's exact sum.

- a sentence's own labels are read as they are: a fully labelled batch gives exactly M2's terms;
- straight-through, the decoded labels are an exact sample of q(c|x): the mean over many draws of
  log p(x|z, c~) is M2's exact expectation (within its standard error), each draw one of the
  enumerated values; the plain relaxation at tau = 1 is not (a mixture of embeddings is no label);
- the reconstruction term trains the classifier through the sample (M2's point: q(c|x) learns
  from unlabelled sentences);
- --estimator reinforce is refused for labels (one line, exit 2), gumbel trains semi-supervised.
"""

import math

import pytest
import torch

from conftest import TINY_MODEL
from test_labelled_model import _batch, _rows, _tiny_labelled_model, _write


def _setup():
    from sentvae.noise import SeededNoise
    model, _ = _tiny_labelled_model((2, 3))
    tokens, lengths = _batch()
    with torch.no_grad():
        q, log_qc = model.infer(tokens[:, 1:], lengths)
        z, _ = q.rsample(SeededNoise(0, range(5), 0, 1))                      # (B, 1, nz)
    return model, tokens, log_qc, z


def test_own_labels_are_read_as_they_are():
    from sentvae.labelled import label_terms, relaxed_terms
    model, tokens, log_qc, z = _setup()
    labels = torch.tensor([[0, 1], [1, 2], [1, 0], [0, 0], [1, 1]])
    with torch.no_grad():
        exact = label_terms(model, log_qc, z, tokens[:, :-1], tokens[:, 1:], labels).expected()
        for hard in (False, True):
            relaxed = relaxed_terms(model, log_qc, z, tokens[:, :-1], tokens[:, 1:], labels, tau=0.7, hard=hard)
            torch.testing.assert_close(relaxed.expected(), exact, atol=1e-5, rtol=1e-6)


def test_straight_through_draws_are_exact_samples_of_q():
    from sentvae.labelled import label_terms, relaxed_terms
    model, tokens, log_qc, z = _setup()
    labels = torch.tensor([[0, -1], [-1, 2], [-1, -1], [1, -1], [-1, 0]])
    n = 3000
    with torch.no_grad():
        terms = label_terms(model, log_qc, z, tokens[:, :-1], tokens[:, 1:], labels)
        exact = terms.expected()[:, 0]                                        # (B,)
        torch.manual_seed(0)

        def draw(k, tau, hard):       # k independent draws per sentence, in one batch of k copies: (k, B)
            rep = [lq.repeat(k, 1) for lq in log_qc]
            ll = relaxed_terms(model, rep, z.repeat(k, 1, 1), tokens[:, :-1].repeat(k, 1), tokens[:, 1:].repeat(k, 1),
                               labels.repeat(k, 1), tau=tau, hard=hard).expected()[:, 0]
            return ll.view(k, -1)
        draws, soft = draw(n, 0.5, True), draw(300, 1.0, False)
    for b in range(5):
        values = terms.ll[terms.rows == b, 0]
        assert all(bool((values - d).abs().min() < 1e-4) for d in draws[:50, b]), b   # each draw: one value
        se = float(draws[:, b].std()) / math.sqrt(n)
        assert abs(float(draws[:, b].mean() - exact[b])) < 4 * se + 1e-4, (b, float(draws[:, b].mean()), float(exact[b]))
    # the model's forward decodes the relaxed sample when asked (training's --estimator gumbel)
    from sentvae.corpus import Batch
    from sentvae.noise import SeededNoise
    _, lengths = _batch()
    with torch.no_grad():
        out = model(Batch(tokens, lengths, list(range(5)), labels), noise=SeededNoise(0, range(5), 0, 1),
                    relax=(0.5, True))
    for b in range(5):
        assert float((terms.ll[terms.rows == b, 0] - out.ll[b, 0]).abs().min()) < 1e-4, b
    assert float((out.ll[:, 0] - exact).abs().max()) > 1e-3, "forward summed exactly: relax was ignored"
    # the plain relaxation decodes mixtures of label embeddings: its mean is off the exact sum somewhere
    soft_se = soft.std(dim=0) / math.sqrt(300)
    assert bool(((soft.mean(dim=0) - exact).abs() > 6 * soft_se + 1e-3).any()), (soft.mean(dim=0), exact)


def test_the_classifier_learns_from_unlabelled_sentences_through_the_sample():
    from sentvae.labelled import relaxed_terms
    model, tokens, _, z = _setup()
    _, lengths = _batch()
    labels = torch.full((5, 2), -1)
    _, log_qc = model.infer(tokens[:, 1:], lengths)
    torch.manual_seed(1)
    relaxed_terms(model, log_qc, z, tokens[:, :-1], tokens[:, 1:], labels, tau=0.5).expected().sum().backward()
    assert all(p.grad is not None and float(p.grad.abs().sum()) > 0 for p in model.classifier.parameters())


def test_gumbel_trains_semi_supervised_and_reinforce_is_refused(tmp_path):
    import sentvae
    from sentvae.errors import SentvaeError
    rows = _rows("train", 300)
    for r in rows[1::2]:
        del r["mood"]
    data = str(_write(tmp_path / "semi.jsonl", rows))
    small = dict(model_type="word", vocab_size=500, max_tokens=400, epochs=0, max_steps=4, eval_every=4, log_every=2,
                 label_field=["mood"], **TINY_MODEL)
    seen = []
    sentvae.train(data=data, out=str(tmp_path / "run"), estimator="gumbel",
                  on_event=lambda kind, info: seen.append((kind, info)), **small)
    logs = [info for kind, info in seen if kind == "log"]
    valid = [info for kind, info in seen if kind == "valid"]
    assert logs and all(math.isfinite(r["elbo"]) for r in logs) and valid and valid[-1]["kl_labels"] > 0
    with pytest.raises(SentvaeError, match=r"--estimator reinforce: a labelled model"):
        sentvae.train(data=data, out=str(tmp_path / "run2"), estimator="reinforce", **small)
    assert not (tmp_path / "run2").exists()
