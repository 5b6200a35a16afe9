"""Every posterior x prior x objective, and every encoder x decoder, trains, evaluates and generates
through the same commands, with no class of its own; and what each family promises (the IWAE bound's
gradients, a sampled code that does not depend on the batch, the interpolation's ends, a vMF's codes
on their sphere, a CNN decoder's receptive field) holds."""

import json
import math

import numpy as np
import pytest
import torch

import sentvae
from sentvae.config import ModelConfig
from sentvae.corpus import collate
from sentvae.errors import SentvaeError
from sentvae.model import build_model
from sentvae.noise import StreamNoise
from sentvae.objective import ELBO, IWAE
from conftest import TINY_MODEL, run_cli, tiny_train_config

FAMILIES = {
    "iwae": dict(objective="iwae", train_samples=3),
    "iaf": dict(posterior="iaf", flow_steps=2),
    "gmm": dict(prior="gmm", components=4, dispersion=0.5),
    "iaf-gmm-iwae": dict(posterior="iaf", prior="gmm", components=3, objective="iwae", train_samples=2),
    "transformer-iaf": dict(arch="transformer", posterior="iaf", d_model=32, heads=2, ff=64),
    "vmf": dict(posterior="vmf", kappa=10.0),
    "cnn": dict(decoder="cnn", dilations="1,2"),                    # as a flag or a recipe gives it
    "lstm-transformer": dict(encoder="lstm", decoder="transformer", heads=2, ff=64),
}
EXACT_KL = ("iwae", "gmm", "vmf", "cnn", "lstm-transformer")        # the flows' KL is estimated
SENTENCES = ["the old man read a book in the park .", "did the dogs chase two cats ?", "she will not sing ."]


@pytest.fixture(scope="module", params=list(FAMILIES))
def family_run(request, tmp_path_factory, corpus_dir):
    out = tmp_path_factory.mktemp(request.param)
    opts = {k: v for k, v in TINY_MODEL.items() if not (FAMILIES[request.param].get("arch") and k in ("emb_dim", "hidden"))}
    sentvae.train(data=corpus_dir / "train.txt", valid=corpus_dir / "valid.txt", out=out, model_type="word",
                  vocab_size=1000, max_steps=24, epochs=0, eval_every=12, log_every=6, anneal_steps=12,
                  max_tokens=800, max_len=40, device="cpu", **opts, **FAMILIES[request.param])
    return request.param, out


def test_each_family_trains_evaluates_and_generates(family_run, corpus_dir, monkeypatch, capsys):
    name, out = family_run
    ckpt = out / "best.pt"
    model = sentvae.load(ckpt, device="cpu")
    r = model.evaluate(SENTENCES, k=20, seed=1)
    assert math.isfinite(r.iw_nll) and r.iw_nll <= r.elbo + 3 * r.iw_nll_se + 1e-6, (name, r)
    assert 0 <= r.au <= model.latent and math.isfinite(r.mi)
    assert r.kl_exact == (name in EXACT_KL)
    code, stdout, err = run_cli(["sample", "-c", ckpt, "-n", "3", "--device", "cpu"], monkeypatch, capsys)
    assert code == 0 and len(stdout.splitlines()) == 3, err
    code, stdout, err = run_cli(["interpolate", "-c", ckpt, SENTENCES[0], SENTENCES[1], "--steps", "4",
                                 "--device", "cpu"], monkeypatch, capsys)
    assert code == 0 and len(stdout.splitlines()) == 4, err
    # encode | decode equals reconstruct, and in Python decode(encode(texts)) too
    code, codes, err = run_cli(["encode", "-c", ckpt, "--device", "cpu", *SENTENCES], monkeypatch, capsys)
    assert code == 0, err
    code, decoded, err = run_cli(["decode", "-c", ckpt, "--device", "cpu"], monkeypatch, capsys, stdin=codes)
    assert code == 0, err
    code, rebuilt, err = run_cli(["reconstruct", "-c", ckpt, "--device", "cpu", *SENTENCES], monkeypatch, capsys)
    assert code == 0 and decoded == rebuilt, err
    assert model.decode(model.encode(SENTENCES)) == rebuilt.splitlines()
    rows = [json.loads(line) for line in codes.splitlines()]
    assert set(model.posterior_params) <= set(rows[0]), rows[0].keys()


def test_eval_table_says_how_the_kl_was_had(family_run, monkeypatch, capsys, corpus_dir):
    name, out = family_run
    code, stdout, err = run_cli(["eval", "-c", out / "best.pt", "--data", corpus_dir / "valid.txt", "-k", "5",
                                 "--device", "cpu", "--json"], monkeypatch, capsys)
    assert code == 0, err
    report = json.loads(stdout)
    assert report["kl_exact"] == (name in EXACT_KL)
    assert ("Monte Carlo" in err) == (not report["kl_exact"])


def test_info_says_what_the_config_implies(family_run, monkeypatch, capsys):
    """A CNN decoder's receptive field, a vMF's fixed KL; the model as built, both sides named."""
    from sentvae.vmf import constants
    name, out = family_run
    code, text, err = run_cli(["info", out / "best.pt"], monkeypatch, capsys)
    assert code == 0, err
    code, js, err = run_cli(["info", out / "best.pt", "--json"], monkeypatch, capsys)
    report = json.loads(js)
    model = report["model"]
    assert (model["encoder"], model["decoder"]) == {"cnn": ("lstm", "cnn"), "lstm-transformer": ("lstm", "transformer"),
                                                    "transformer-iaf": ("transformer", "transformer")}.get(
                                                        name, ("lstm", "lstm"))
    if name == "cnn":       # dilations 1, 2 and the default kernel 3: 1 + 2 x 3
        assert report["receptive_field"] == 7 and model["dilations"] == [1, 2] and model["kernel_size"] == 3
        assert "receptive field 7 " in text and "dilations 1,2," in text
    else:
        assert "receptive_field" not in report and "receptive field" not in text
    if name == "vmf":
        kl = constants(10.0, 8)["kl"]
        assert report["kl_fixed"] == pytest.approx(kl) and model["prior"] == "uniform"
        assert f"KL fixed at {kl:.3f} nats" in text
        assert report["valid"]["kl"] == pytest.approx(kl, rel=1e-5)      # what training measured
    else:
        assert "kl_fixed" not in report and "KL fixed" not in text


def test_vmf_codes_lie_on_their_sphere_and_every_command_works(family_run, corpus_dir, tmp_path, monkeypatch, capsys):
    """A vMF model's codes are E_q[z] = A_d(kappa) mu, all of one norm; slerp keeps it; its samples
    come from the uniform prior on the sphere; eval's figures do not depend on batching; plot --latent
    maps it. (And a CNN decoder's model maps too.)"""
    from sentvae.latent import slerp
    from sentvae.vmf import constants
    name, out = family_run
    if name not in ("vmf", "cnn"):
        return
    ckpt = out / "best.pt"
    code, _, err = run_cli(["plot", "--latent", "-c", ckpt, "--data", corpus_dir / "valid.txt", "-o",
                            tmp_path / "latent.png", "--path", SENTENCES[0], "--path", SENTENCES[1], "--device", "cpu"],
                           monkeypatch, capsys)
    assert code == 0 and (tmp_path / "latent.png").stat().st_size > 0, err
    if name != "vmf":
        return
    model = sentvae.load(ckpt, device="cpu")
    A = constants(10.0, 8)["mean_cos"]
    codes = model.codes(SENTENCES)
    assert torch.allclose(codes.norm(dim=1), torch.full((3,), A), atol=1e-5)
    assert torch.allclose(model.encode(SENTENCES).params()["mu"].norm(dim=1), torch.ones(3), atol=1e-5)
    path = slerp(codes[0], codes[1], torch.linspace(0, 1, 5))
    assert torch.allclose(path.norm(dim=1), torch.full((5,), A), atol=1e-5)
    sampled = model.codes(SENTENCES, "sample", seed=2)
    assert torch.allclose(sampled.norm(dim=1), torch.ones(3), atol=1e-5)
    code, stdout, err = run_cli(["interpolate", "-c", ckpt, SENTENCES[0], SENTENCES[1], "--steps", "5", "--method",
                                 "slerp", "--device", "cpu"], monkeypatch, capsys)
    assert code == 0 and len(stdout.splitlines()) == 5, err
    prior = model.net.prior.sample(4, torch.Generator().manual_seed(0))
    assert torch.allclose(prior.norm(dim=1), torch.ones(4), atol=1e-6)
    texts = (corpus_dir / "valid.txt").read_text().splitlines()[:12]
    one = model.evaluate(texts, k=20, seed=1, max_tokens=60, per_sentence=True)     # a few sentences per batch
    many = model.evaluate(texts, k=20, seed=1, max_tokens=5000, per_sentence=True)
    # the same z for each sentence: equal up to float32 rounding (the decoder's padding differs by batch)
    assert np.allclose(one.per_sentence["iw_nll"], many.per_sentence["iw_nll"], rtol=0, atol=1e-4)
    assert one.kl == pytest.approx(constants(10.0, 8)["kl"]) and one.kl_exact
    assert math.isfinite(one.mi) and one.mi <= math.log(len(texts)) + 1e-6     # (He et al.'s estimate: noisy about 0)


def test_iwae_with_one_sample_gives_the_elbo_gradients(tok, corpora):
    """With K = 1 the IWAE bound is the ELBO with its KL estimated from the sample: on the same
    noise, the same gradients to float tolerance; and with K > 1 they differ."""
    torch.manual_seed(0)
    m = build_model(ModelConfig(vocab_size=tok.vocab_size, **TINY_MODEL))
    batch = collate(corpora[0], np.arange(6))

    def grads(objective, K, seed):
        m.zero_grad()
        terms = m(batch, samples=K, noise=StreamNoise(6, K, generator=torch.Generator().manual_seed(seed)))
        terms.kl.total = (terms.log_q - terms.log_p).mean(1)          # the ELBO's KL from its sample
        objective.loss(terms, 1.0)[0].backward()
        return torch.cat([p.grad.flatten() for p in m.parameters() if p.grad is not None])

    cfg = tiny_train_config(objective="iwae", train_samples=1)
    g_iwae, g_elbo = grads(IWAE(cfg), 1, 3), grads(ELBO(cfg), 1, 3)
    assert torch.allclose(g_iwae, g_elbo, atol=1e-6, rtol=1e-5)
    g_iwae5 = grads(IWAE(tiny_train_config(objective="iwae", train_samples=5, max_tokens=1000)), 5, 3)
    g_elbo5 = grads(ELBO(cfg), 5, 3)
    assert not torch.allclose(g_iwae5, g_elbo5, atol=1e-4)


def test_iwae_bound_lies_between_the_elbo_and_the_nll_and_tightens_with_k(tok, corpora):
    torch.manual_seed(0)
    m = build_model(ModelConfig(vocab_size=tok.vocab_size, **TINY_MODEL)).eval()
    with torch.no_grad():            # a decoder that leans on z and a posterior off the true one: a gap to close
        m.decoder.z_to_state.weight.mul_(20.0)
        m.to_posterior.weight.mul_(0.5)
    batch = collate(corpora[1], np.arange(20))
    cfg = tiny_train_config()
    bounds = {}
    with torch.no_grad():
        for K in (1, 10, 100):
            runs = [IWAE(tiny_train_config(objective="iwae", train_samples=K, max_len=40, max_tokens=K * 41)).loss(
                m(batch, samples=K, noise=StreamNoise(20, K, generator=torch.Generator().manual_seed(s))), 1.0)[1]
                for s in range(4)]
            bounds[K] = np.mean([float(f["iwae"]) for f in runs])
        elbo = float(ELBO(cfg).loss(m(batch), 1.0)[1]["elbo"])
    assert bounds[1] > bounds[10] > bounds[100]                     # -IWAE falls with K (Burda et al.)
    assert abs(bounds[1] - elbo) < 2.0                              # K = 1: the -ELBO, up to noise






def test_knobs_that_a_family_cannot_honour_are_refused(tmp_path, corpus_dir):
    base = dict(data=corpus_dir / "train.txt", valid=corpus_dir / "valid.txt", out=tmp_path / "r", max_steps=2,
                epochs=0, device="cpu", **TINY_MODEL)
    cases = [(dict(posterior="iaf", free_bits=0.5), "--free-bits: needs a KL that splits by latent dimension"),
             (dict(prior="gmm", free_bits=0.5), "--free-bits: needs a KL that splits"),
             (dict(objective="iwae", train_samples=2, free_bits=0.5), "--free-bits: applies to --objective elbo"),
             (dict(dispersion=0.5), "--dispersion: applies to a mixture prior"),
             (dict(no_latent=True, posterior="iaf"), "--posterior: a --no-latent model"),
             (dict(objective="iwae", train_samples=50, max_tokens=1000), "--max-tokens: must be at least --train-samples")]
    for extra, message in cases:
        with pytest.raises(SentvaeError, match=message):
            sentvae.train(**{**base, **extra})
        assert not (tmp_path / "r" / "last.pt").exists()


def test_agreement_of_clusters_with_labels_by_hand():
    from sentvae.clusters import agreement
    assert agreement(list("aabb"), [0, 0, 1, 1]) == pytest.approx(
        {"homogeneity": 1.0, "completeness": 1.0, "nmi": 1.0, "mutual_information": math.log(2)})
    assert agreement(list("aabb"), [0, 1, 0, 1])["nmi"] == pytest.approx(0.0, abs=1e-12)
    # a: components 0, 0, 1; b: 1, 2, 2 -> I = 2/3 log 2, H(Y) = log 2, H(C) = log 3
    a = agreement(list("aaabbb"), [0, 0, 1, 1, 2, 2])
    assert a["homogeneity"] == pytest.approx(2 / 3)
    assert a["completeness"] == pytest.approx((2 / 3) * math.log(2) / math.log(3))
    assert a["nmi"] == pytest.approx((4 / 3) * math.log(2) / (math.log(2) + math.log(3)))


def test_clusters_and_component_samples_of_a_mixture_prior(family_run, corpus_dir, tmp_path, monkeypatch, capsys):
    name, out = family_run
    if "gmm" not in name:
        code, _, err = run_cli(["clusters", out / "best.pt", "--data", corpus_dir / "valid.txt", "--device", "cpu"],
                               monkeypatch, capsys)
        assert code == 2 and "has no discrete latent" in err
        code, _, err = run_cli(["sample", "-c", out / "best.pt", "--component", "0", "--device", "cpu"], monkeypatch, capsys)
        assert code == 2 and "--component" in err and len(err.strip().splitlines()) == 1
        return
    texts = [t for t in (corpus_dir / "valid.txt").read_text().splitlines() if t.strip()]
    data = tmp_path / "labelled.jsonl"
    data.write_text("".join(json.dumps({"text": t, "mood": "question" if t.endswith("?") else "statement"}) + "\n"
                            for t in texts))
    code, stdout, err = run_cli(["clusters", out / "best.pt", "--data", data, "--label-field", "mood", "--top", "2",
                                 "--device", "cpu", "--json"], monkeypatch, capsys)
    assert code == 0, err
    report = json.loads(stdout)
    C = sentvae.load(out / "best.pt", device="cpu").config.components
    assert len(report["components"]) == C
    assert sum(c["sentences"] for c in report["components"]) == len(texts)
    assert sum(c["share"] for c in report["components"]) == pytest.approx(1.0)
    assert all(len(c["typical"]) == min(2, c["sentences"]) for c in report["components"])
    assert 0.0 <= report["agreement"]["nmi"] <= 1.0 and "homogeneity" in err
    model = sentvae.load(out / "best.pt", device="cpu")
    assert len(model.sample(3, component=C - 1)) == 3
    with pytest.raises(SentvaeError, match=r"--component: must be an integer in \[0, "):
        model.sample(2, component=C)


def test_an_lm_refuses_training_an_encoder_before_writing(tmp_path, corpus_dir, v1):
    for extra in (dict(aggressive=True, no_latent=True, **TINY_MODEL),
                  dict(train_only="encoder", init_from=v1["lm"])):
        with pytest.raises(SentvaeError, match="^--(aggressive|train-only: encoder): a --no-latent model"):
            sentvae.train(data=corpus_dir / "train.txt", out=tmp_path / "r", max_steps=2, epochs=0, device="cpu",
                          **extra)
        assert not (tmp_path / "r").exists()
