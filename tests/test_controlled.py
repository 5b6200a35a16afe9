"""Hu et al. 2017's generator terms (sentvae/controlled.py): the soft-decoded sentence, read back by
the model's own classifier and encoder, trains the generator only.

- at a temperature near 0 the soft sentence is greedy decoding's sentence (the same decoder, the
  same masked outputs), and the classifier and encoder read it as they read those tokens;
- the terms' gradients reach the decoder and the label embeddings, never the classifier, the
  encoder or the posterior head (held constant, as Hu et al.'s discriminator and encoder are);
- without labels the flags are refused: one line, exit 2, nothing written.
"""

from types import SimpleNamespace

import pytest
import torch

from conftest import TINY_MODEL, run_cli


def _model(arch):
    from sentvae.config import ModelConfig
    from sentvae.label_vocab import LabelVocab
    from sentvae.model import build_model
    torch.manual_seed(0)
    vocab = LabelVocab({"a0": ["x", "y"], "a1": ["p", "q", "r"]})
    shape = dict(heads=2, ff=64) if arch == "transformer" else {}
    cfg = ModelConfig(vocab_size=30, labels=vocab.to_dict(), label_dim=4, arch=arch, **TINY_MODEL, **shape)
    model = build_model(cfg)
    with torch.no_grad():        # a sharper output layer than at init: clear argmaxes, some EOS
        for p in model.parameters():
            p.mul_(4.0)
    return model.double().eval()


def _codes(model, B=6):
    g = torch.Generator().manual_seed(3)
    z = torch.randn(B, model.cfg.latent, generator=g, dtype=torch.float64)
    c = torch.stack([torch.randint(v, (B,), generator=g) for v in model.conditioner.sizes], dim=1)
    return z, c


def _greedy_tokens(model, z, c, steps):
    """Greedy decoding's sentences as the encoder reads them (words + EOS, padded) and their lengths."""
    from sentvae.decode import greedy
    from sentvae.tokenizer import EOS, PAD
    ids = greedy(model, z, max_len=steps, c=c)
    rows = [(s + [EOS])[:steps] for s in ids]
    lengths = torch.tensor([len(r) for r in rows])
    tokens = torch.full((len(rows), steps), PAD, dtype=torch.long)
    for i, r in enumerate(rows):
        tokens[i, :len(r)] = torch.tensor(r)
    return tokens, lengths


@pytest.mark.parametrize("arch", ["lstm", "transformer"])
def test_soft_decoding_near_zero_temperature_is_greedy_decoding(arch):
    from sentvae.controlled import soft_decode
    model = _model(arch)
    z, c = _codes(model)
    steps = 10
    soft, lengths = soft_decode(model, z, c, steps, tau=1e-6)
    tokens, want = _greedy_tokens(model, z, c, steps)
    assert lengths.tolist() == want.tolist()
    assert (want < steps).any(), "no sentence ended: the test would not see lengths"
    for i, n in enumerate(want.tolist()):
        torch.testing.assert_close(soft[i, :n], model.emb(tokens[i, :n]), atol=1e-6, rtol=0)


@pytest.mark.parametrize("arch", ["lstm", "transformer"])
def test_the_judges_read_the_soft_sentence_as_the_greedy_one(arch):
    from sentvae.controlled import judged
    model = _model(arch)
    z, c = _codes(model)
    log_qc, q, _ = judged(model, z, c, 10, tau=1e-6)
    tokens, lengths = _greedy_tokens(model, z, c, 10)
    q_want, log_qc_want = model.infer(tokens, lengths)
    for got, want in zip(log_qc, log_qc_want):
        torch.testing.assert_close(got, want, atol=1e-6, rtol=1e-6)
    torch.testing.assert_close(q.log_prob(z), q_want.log_prob(z), atol=1e-5, rtol=1e-6)


def test_the_terms_train_the_generator_only():
    from sentvae.controlled import generator_loss
    model = _model("lstm").float().train()
    z, _ = _codes(model)
    batch = SimpleNamespace(tokens=torch.zeros(z.size(0), 9, dtype=torch.long))
    cfg = SimpleNamespace(attr_weight=0.1, indep_weight=0.1, soft_tau=0.5, soft_codes="posterior", sleep_weight=0.0,
                          sleep_entropy=0.1)
    loss, figures = generator_loss(model, SimpleNamespace(z=z.float().unsqueeze(1).requires_grad_()), batch, cfg)
    loss.backward()
    assert set(figures) == {"attr_ce", "attr_acc", "indep_nll"} and torch.isfinite(loss)
    held = [model.encoder, model.classifier, model.to_posterior]
    for module in held:
        for name, p in module.named_parameters():
            assert p.grad is None, f"{type(module).__name__}.{name} is trained by the generator's terms"
    for module in (model.decoder, model.conditioner):
        assert any(p.grad is not None and p.grad.abs().sum() > 0 for p in module.parameters()), type(module)


def test_the_sleep_step_trains_the_classifier_heads_only_on_the_labels_drawn():
    """--sleep-weight alone: q(c|x)'s heads learn to read the drawn labels back from the generated
    sentences; nothing else moves (no generator graph, the encoder's summary detached)."""
    from torch.distributions import Categorical
    from sentvae.controlled import generator_loss, judged, sleep_loss
    model = _model("lstm").float().train()
    z, _ = _codes(model)
    batch = SimpleNamespace(tokens=torch.zeros(z.size(0), 9, dtype=torch.long))
    cfg = SimpleNamespace(attr_weight=0.0, indep_weight=0.0, soft_tau=0.5, soft_codes="posterior", sleep_weight=2.0,
                          sleep_entropy=0.3)
    torch.manual_seed(7)                                  # the labels drawn from p(c): the default stream
    loss, figures = generator_loss(model, SimpleNamespace(z=z.float().unsqueeze(1)), batch, cfg)
    loss.backward()
    assert set(figures) == {"sleep_ce", "sleep_entropy"}
    for module in (model.encoder, model.to_posterior, model.decoder, model.conditioner, model.emb):
        for name, p in module.named_parameters():
            assert p.grad is None or float(p.grad.abs().sum()) == 0.0, f"{type(module).__name__}.{name}"
    assert all(p.grad is not None and float(p.grad.abs().sum()) > 0 for p in model.classifier.parameters())
    # its value: the mean over sentences of -log q(c|x~) + beta H(q(.|x~)), summed over the attributes
    torch.manual_seed(7)
    c = model.label_prior.sample(torch.full((z.size(0), 2), -1))
    with torch.no_grad():
        _, _, summary = judged(model, z.float(), c, 8, 0.5)
        got, _ = sleep_loss(model, summary, c, 0.3)
        want = 0.0
        for a, lq in enumerate(model.classifier(summary)):
            d = Categorical(logits=lq)
            want = want + (-d.log_prob(c[:, a]) + 0.3 * d.entropy())
    assert float(loss.detach()) == pytest.approx(2.0 * float(want.mean()), rel=1e-5)
    assert float(got) == pytest.approx(float(want.mean()), rel=1e-5)


def test_the_sleep_step_beside_the_generator_terms_leaves_the_generator_as_they_train_it():
    from sentvae.controlled import generator_loss
    grads = {}
    for sleep in (0.0, 2.0):
        model = _model("lstm").float().train()
        z, _ = _codes(model)
        cfg = SimpleNamespace(attr_weight=0.1, indep_weight=0.1, soft_tau=0.5, soft_codes="posterior",
                              sleep_weight=sleep, sleep_entropy=0.1)
        torch.manual_seed(7)
        loss, _ = generator_loss(model, SimpleNamespace(z=z.float().unsqueeze(1)),
                                 SimpleNamespace(tokens=torch.zeros(z.size(0), 9, dtype=torch.long)), cfg)
        loss.backward()
        grads[sleep] = ([p.grad.clone() for p in model.decoder.parameters()],
                        [p.grad for p in model.classifier.parameters()])
    for a, b in zip(grads[0.0][0], grads[2.0][0]):
        torch.testing.assert_close(a, b)                    # the decoder learns from the generator's terms alone
    assert all(g is None for g in grads[0.0][1]) and all(g is not None for g in grads[2.0][1])


def test_prior_codes_do_not_read_the_batch():
    """--soft-codes prior: the soft sentences come from z ~ p(z), whatever the batch's codes are."""
    from sentvae.controlled import generator_loss
    model = _model("lstm").float().train()
    nan = torch.full((6, 1, model.cfg.latent), float("nan"))
    batch = SimpleNamespace(tokens=torch.zeros(6, 9, dtype=torch.long))
    for codes, finite in (("prior", True), ("posterior", False)):
        cfg = SimpleNamespace(attr_weight=0.1, indep_weight=0.1, soft_tau=0.5, soft_codes=codes, sleep_weight=0.0,
                              sleep_entropy=0.1)
        loss, _ = generator_loss(model, SimpleNamespace(z=nan), batch, cfg)
        assert bool(torch.isfinite(loss)) == finite, codes


def test_the_judges_do_not_move_the_word_embeddings_they_read_with():
    """The readers see the soft words through a detached embedding table. With an untied output layer
    and a decoder blind to its inputs, the judges' reading is the only way from the table to the
    terms: the table must get no gradient at all."""
    from sentvae.config import ModelConfig
    from sentvae.controlled import generator_loss
    from sentvae.label_vocab import LabelVocab
    from sentvae.model import build_model
    torch.manual_seed(0)
    vocab = LabelVocab({"a0": ["x", "y"], "a1": ["p", "q", "r"]})
    model = build_model(ModelConfig(vocab_size=30, labels=vocab.to_dict(), label_dim=4, tie_weights=False,
                                    **TINY_MODEL)).train()
    with torch.no_grad():
        model.decoder.lstm.weight_ih_l0[:, :model.cfg.emb_dim].zero_()         # the word inputs' columns
    z, _ = _codes(model)
    cfg = SimpleNamespace(attr_weight=0.1, indep_weight=0.1, soft_tau=0.5, soft_codes="posterior", sleep_weight=0.0,
                          sleep_entropy=0.1)
    loss, _ = generator_loss(model, SimpleNamespace(z=z.float().unsqueeze(1)),
                             SimpleNamespace(tokens=torch.zeros(z.size(0), 9, dtype=torch.long)), cfg)
    loss.backward()
    assert model.emb.weight.grad is None or float(model.emb.weight.grad.abs().max()) == 0.0
    assert float(model.out.weight.grad.abs().sum()) > 0          # the generator still learns


@pytest.mark.parametrize("flag", ["--attr-weight", "--indep-weight", "--sleep-weight"])
def test_the_terms_need_labels(flag, tmp_path, monkeypatch, capsys):
    from pathlib import Path
    data = Path(__file__).resolve().parent.parent / "data" / "train.txt"
    code, out, err = run_cli(["train", "--data", data, "--out", tmp_path / "run", flag, "0.1", "--max-steps", "1"],
                             monkeypatch, capsys)
    assert code == 2 and flag in err and "labelled model" in err and len(err.strip().splitlines()) == 1, err
    assert not (tmp_path / "run").exists()
