"""Evaluation: true ELBO, rec, KL, importance-weighted NLL and perplexity, MI, active units.

Per-sentence figures are in nats. Perplexity divides by words + 1 (whitespace words plus
end of sentence), not by subword pieces, so it compares across tokenizers and with
published word-level figures.

Importance-weighted NLL (Burda et al. 2016):
    log p(x) ~= logsumexp_k [log p(x|z_k) + log p(z_k) - log q(z_k|x)] - log K,  z_k ~ q(z|x)
The encoder runs once per sentence; the K decoder passes of many sentences are batched
together in chunks bounded by a token budget, so memory does not grow with K, and the
logsumexp is accumulated in float32 as it streams. The noise for sentence i, sample k is
drawn from a generator seeded by (seed, i, k // BLOCK) (sentvae.noise.SeededNoise): figures do
not depend on batch size, token budget or chunking, and the first K samples are the same for
every larger K. Everything here asks the posterior and prior objects (sentvae/posteriors.py,
priors.py, kl.py), never a family's formula: the KL is analytic where the pair has a closed form
and a Monte Carlo estimate from the same K samples otherwise (`kl_exact` says which).

A latent that takes finitely many values (a posterior with `values`: the LM baseline's one, a
categorical's K, sentvae/categorical.py) is summed over instead, with no sampling: log p(x) =
logsumexp_v [log p(x|v) + log p(v)] and rec = -sum_v q(v|x) log p(x|v), exactly (`nll_exact`; SE 0,
`iw_samples` = the number of values, ESS set to it), and MI is I(x; v) exactly under the empirical
distribution of x. A categorical beside a Gaussian z is importance-weighted as any latent, c sampled
with z from q(c|x) q(z|x) in each weight (one decoder pass per weight).

svi_steps > 0 (semi-amortized inference, sentvae/svi.py): each sentence's posterior is first
refined by that many gradient steps on its own ELBO, and every figure is that of the refined
posterior; the difference from svi_steps = 0 is the amortisation gap. The refinement's noise is
seeded per sentence too, apart from the importance samples', so the figures still do not depend on
batching.
"""

import math
from dataclasses import asdict, dataclass, field

import numpy as np
import torch

from sentvae.command_config import EvalConfig
from sentvae.config import SVI_LR
from sentvae.corpus import Corpus, collate, make_batches
from sentvae.kl import NeedsSamples, kl_divergence
from sentvae.labelled import correct, given, label_terms
from sentvae.noise import BLOCK, SeededNoise, StreamNoise
from sentvae.svi import refine_corpus

AU_THRESHOLD = 0.01


@dataclass
class EvalResult:
    sentences: int
    words: int          # whitespace words + one end-of-sentence per sentence
    tokens: int         # subword pieces + EOS
    elbo: float         # true -ELBO per sentence (rec + KL, beta = 1)
    rec: float          # -E_q log p(x|z), per sentence
    kl: float           # KL(q(z|x) || p(z)), per sentence
    iw_nll: float       # importance-weighted -log p(x), per sentence
    iw_nll_se: float    # its Monte Carlo standard error
    ess: float          # mean effective sample size of the importance weights (1..K)
    ppl: float          # exp(IW-NLL total / words)
    ppl_elbo: float     # exp(-ELBO total / words): an upper bound on the true perplexity
    mi: float           # I(x; z) under q (He et al. 2019)
    au: int             # active units
    latent: int
    iw_samples: int
    seed: int
    kl_exact: bool = True   # KL (and so -ELBO) in closed form; False: a Monte Carlo estimate from the K samples
    nll_exact: bool = False  # the NLL is exact (summed over the latent's iw_samples values), not an estimate
    svi_steps: int = 0       # gradient steps refining each posterior before the figures (0: the encoder's)
    svi_lr: float | None = None   # their step size (None when svi_steps is 0)
    # a labelled model's (sentvae/labelled.py): KL(q(c|x) || p(c)) over the labels each sentence lacks
    # (in elbo, not in kl); the sentences with a label, whose elbo and iw_nll are of p(x | their labels);
    # q(c|x)'s accuracy and the labelled sentences, per attribute
    kl_labels: float = 0.0
    conditioned: int = 0
    accuracy: dict | None = None
    labelled: dict | None = None
    # per sentence, in corpus order (evaluate(per_sentence=True)): words, elbo, iw_nll, ess, kl
    per_sentence: dict | None = field(default=None, repr=False, compare=False)

    def to_dict(self) -> dict:
        d = asdict(self)
        d.pop("per_sentence")
        return d

    def sentence_rows(self):
        """One dict per sentence: index (0-based, in the input's order), words (+EOS), -ELBO,
        IW-NLL estimate, ESS, KL; their means are the summary figures."""
        p = self.per_sentence
        for i in range(self.sentences):
            row = {"index": i, "words": int(p["words"][i]), "elbo": float(p["elbo"][i]),
                   "iw_nll": float(p["iw_nll"][i]), "ess": float(p["ess"][i]), "kl": float(p["kl"][i])}
            if "kl_labels" in p:
                row["kl_labels"] = float(p["kl_labels"][i])
            yield row


def active_units(mu: torch.Tensor, threshold: float = AU_THRESHOLD) -> int:
    """Dimensions d with Cov_x(E_q[z_d | x]) > threshold (Burda et al. 2016); mu (N, nz)."""
    if mu.size(0) < 2:
        return 0
    return int((mu.double().var(dim=0, unbiased=True) > threshold).sum())


def sample_noise(seed: int, sentence: np.ndarray, start: int, count: int, nz: int) -> torch.Tensor:
    """Standard normals (len(sentence), count, nz) for samples start..start+count of each sentence,
    exactly as the evaluator draws them."""
    return SeededNoise(seed, sentence, start, count).normal(nz)


MI_SENTENCES_SLOW = 500     # MI over at most this many sentences where log q(z|x) is costly (a flow)


def mutual_information(q, seed: int = 0, chunk: int = 1024) -> float:
    """I(x; z) = E_x E_q(z|x)[log q(z|x)] - E_q(z)[log q(z)], with the aggregate posterior q(z)
    estimated by the mixture of all N posteriors of `q` (He et al. 2019), one z per sentence.
    Lies in [0, log N]. The first term is the posterior's closed-form entropy where it has one
    (else its one-sample estimate). Where log q(z|x) must invert a flow (N^2 inversions), a seeded
    subsample of MI_SENTENCES_SLOW sentences stands for the corpus. A latent with finitely many
    values: exactly, mean_x KL(q(v|x) || mean_x q(v|x))."""
    if q.values is not None:
        _, log_q = q.enumerate()                                                # (N, V)
        p = log_q.exp()
        log_agg = torch.log(p.mean(dim=0))                                      # (V,)
        return float(torch.where(p > 0, p * (log_q - log_agg), 0.0).sum(dim=1).mean())
    if not getattr(q, "cheap_log_prob", True) and q.batch > MI_SENTENCES_SLOW:
        keep = np.sort(np.random.default_rng([seed, 31]).choice(q.batch, MI_SENTENCES_SLOW, replace=False))
        q = q.index(torch.as_tensor(keep))
    N = q.batch
    gen = torch.Generator().manual_seed(seed + 7_777_777)
    z, log_q_own = q.rsample(StreamNoise(N, 1, "cpu", torch.float64, gen))   # (N, 1, nz), (N, 1)
    entropy = q.entropy()
    neg_entropy = -entropy.mean() if entropy is not None else log_q_own.mean()
    log_qz = []
    for s in range(0, N, chunk):
        log_q = q.log_prob(z[s:s + chunk])                                      # (c, N): every z, every x
        log_qz.append(torch.logsumexp(log_q, dim=1) - math.log(N))
    return float(neg_entropy - torch.cat(log_qz).mean())


def iw_plan(lengths: np.ndarray, K: int, max_tokens: int):
    """Yield (sentence indices, samples per decoder call) for K samples per sentence.

    Few sentences of similar length per batch, many copies of each per decoder call: every
    call holds about max_tokens tokens with little padding, and the noise is drawn in whole
    blocks, never wasted. Memory depends on max_tokens, not on K.
    """
    copies = min(K, 4 * BLOCK)
    for idx in make_batches(lengths, max(1, max_tokens // copies), shuffle=False):
        B, T = len(idx), int(lengths[idx].max()) + 1
        chunk = max(1, min(K, max_tokens // (B * T)))
        if chunk > BLOCK:
            chunk -= chunk % BLOCK
        yield idx, chunk


@torch.inference_mode()
def evaluate(model, corpus: Corpus, iw_samples: int = 500, max_tokens: int = 2000, device="cpu",
             seed: int = 0, with_mi: bool = True, on_progress=None, per_sentence: bool = False,
             exact: bool = True, svi_steps: int = 0, svi_lr: float = SVI_LR) -> EvalResult:
    """All figures of the module docstring over `corpus`, K = iw_samples, of the posteriors
    refined by svi_steps steps of size svi_lr (0: the encoder's).

    exact: sum over a latent that takes finitely many values (False: importance-weight it with K
    samples like any other, to compare the two).

    per_sentence: also keep each sentence's figures (EvalResult.sentence_rows), for paired
    comparisons of two models on the same sentences.

    on_progress(sentences done, total) is called after each batch of sentences.
    """
    checked = EvalConfig(iw_samples=iw_samples, max_tokens=max_tokens, seed=seed)     # each its flag's domain
    iw_samples, max_tokens, seed = checked.iw_samples, checked.max_tokens, checked.seed
    was_training = model.training
    model.eval()
    device = torch.device(device)
    n, K = len(corpus), iw_samples
    head = model.to_posterior
    values = getattr(head, "values", head.family.values)
    exact = exact and values is not None
    if exact:
        K = values       # every value once: the sum is p(x) itself
    refined = refine_corpus(model, corpus, svi_steps, svi_lr, seed, max_tokens, device) if svi_steps else None
    posteriors, order = [], []
    log_px = torch.empty(n, dtype=torch.float64)      # IW estimate of log p(x)
    ess = torch.empty(n, dtype=torch.float64)
    rec = torch.empty(n, dtype=torch.float64)         # -mean_k log p(x|z_k)
    kl = torch.empty(n, dtype=torch.float64)          # KL(q || p): closed form, or its estimate from the K samples
    labelled = model.classifier is not None
    kl_c = torch.zeros(n, dtype=torch.float64)        # KL(q(c|x) || p(c)) of the labels a sentence lacks
    conditioned, hits, known = 0, 0, 0                # q(c|x)'s accuracy, per attribute (tensors)
    kl_exact = True
    done = 0
    for idx, chunk in iw_plan(corpus.lengths, K, max_tokens):
        batch = collate(corpus, idx).to(device)
        x = batch.tokens
        B = x.size(0)
        if refined is None:
            q, log_qc = model.infer(x[:, 1:], batch.lengths)
            q = q.to(dtype=torch.float32)
        else:                 # svi: refused for a labelled model, so no q(c|x) to keep
            q, log_qc = refined.index(torch.as_tensor(idx)).to(device), None
        if labelled:
            labels = given(batch.labels, B, len(log_qc), device)
            kl_c[torch.as_tensor(idx)] = model.label_prior.kl(log_qc, labels).double().cpu()
            h, k = correct(log_qc, labels)
            hits, known = hits + h.cpu(), known + k.cpu()
            conditioned += int((labels >= 0).any(dim=1).sum())
        try:                  # in closed form (in float64, from the float32 parameters), or from the samples
            kl_closed = kl_divergence(q.to(dtype=torch.float64), model.prior).total.cpu()
        except NeedsSamples:
            kl_closed = None
        # streaming logsumexp of log w and of 2 log w (for the ESS), sharing one running max
        run_max = torch.full((B,), -math.inf, device=device)
        s1 = torch.zeros(B, device=device)
        s2 = torch.zeros(B, device=device)
        rec_sum = torch.zeros(B, dtype=torch.float64, device=device)
        kl_sum = torch.zeros(B, dtype=torch.float64, device=device)
        every = q.enumerate() if exact else None                               # (B, V, nz), (B, V)
        for start in range(0, K, chunk):
            kc = min(chunk, K - start)
            if exact:
                z, log_qz = every[0][:, start:start + kc], every[1][:, start:start + kc]
            else:
                z, log_qz = q.rsample(SeededNoise(seed, idx, start, kc, device))   # (B, kc, nz), (B, kc)
            if labelled:      # log p(x|z) with the missing labels marginalised; M2's E_q(c|x) for rec
                terms = label_terms(model, log_qc, z, x[:, :-1], x[:, 1:], labels)
                ll, ll_rec = terms.marginal(), terms.expected()                # (B, kc) each
            else:
                xr = x.repeat_interleave(kc, dim=0)                            # (B*kc, T+1)
                ll = model.log_likelihood(z.reshape(B * kc, -1), xr[:, :-1], xr[:, 1:]).view(B, kc).float()
                ll_rec = ll
            log_pz = model.prior.log_prob(z)                                   # (B, kc)
            log_w = ll + log_pz - (0.0 if exact else log_qz)                   # (B, kc)
            new_max = torch.maximum(run_max, log_w.max(dim=1).values)
            scale = torch.exp(run_max - new_max)
            s1 = s1 * scale + torch.exp(log_w - new_max.unsqueeze(1)).sum(dim=1)
            s2 = s2 * scale ** 2 + torch.exp(2 * (log_w - new_max.unsqueeze(1))).sum(dim=1)
            run_max = new_max
            rec_sum -= (ll_rec.double() * (log_qz.double().exp() if exact else 1.0)).sum(dim=1)
            if kl_closed is None:
                kl_sum += kl_divergence(q, model.prior, z, log_qz).total.double() * kc
        where = torch.as_tensor(idx)
        log_px[where] = (run_max + torch.log(s1) - (0.0 if exact else math.log(K))).double().cpu()
        ess[where] = float(K) if exact else (s1.double() ** 2 / s2.double()).cpu()
        rec[where] = (rec_sum / (1 if exact else K)).cpu()
        kl[where] = kl_closed if kl_closed is not None else (kl_sum / K).cpu()
        kl_exact = kl_exact and kl_closed is not None
        posteriors.append(q.to("cpu"))
        order.append(idx)
        done += B
        if on_progress is not None:
            on_progress(done, n)
    model.train(was_training)
    # every sentence's posterior, in corpus order
    q_all = type(posteriors[0]).cat(posteriors).index(torch.as_tensor(np.argsort(np.concatenate(order))))
    q64 = q_all.to(dtype=torch.float64)
    rows = {"words": corpus.words + 1, "elbo": (rec + kl + kl_c).numpy(), "iw_nll": (-log_px).numpy(),
            "ess": ess.numpy(), "kl": kl.numpy()}
    extra = {}
    if labelled:
        rows["kl_labels"] = kl_c.numpy()
        names = model.labels.attributes
        extra = dict(conditioned=conditioned, labelled={a: int(k) for a, k in zip(names, known)},
                     accuracy={a: (float(h) / int(k) if k else None) for a, h, k in zip(names, hits, known)})
    return EvalResult(
        **extra,
        **summarize(rows, K), tokens=int(corpus.lengths.sum()) + n,
        mi=mutual_information(q64, seed) if with_mi else float("nan"),
        au=active_units(q_all.mean()), latent=q_all.dim, iw_samples=K, seed=seed, kl_exact=kl_exact,
        nll_exact=exact,
        svi_steps=svi_steps, svi_lr=svi_lr if svi_steps else None,
        per_sentence=rows if per_sentence else None)


def summarize(rows: dict, K: int) -> dict:
    """The summary figures of EvalResult that come from the sentences' own figures.

    rows: per sentence, arrays of equal length: words (+EOS), elbo, iw_nll, ess, kl, and a labelled
    model's kl_labels (KL(q(c|x) || p(c)), part of elbo, not of kl or rec). Shared by
    `evaluate` and by whoever evaluates a corpus in parts and merges them (bench/ptb_merge.py),
    so that a merged figure is computed exactly as a whole one."""
    words, elbo, iw_nll, ess, kl = (np.asarray(rows[k], dtype=np.float64)
                                    for k in ("words", "elbo", "iw_nll", "ess", "kl"))
    n, n_words = len(elbo), int(words.sum())
    kl_c = np.asarray(rows.get("kl_labels", np.zeros(n)), dtype=np.float64)
    # Var[log mean w] ~= Var[w] / (K E[w]^2) = 1/ESS - 1/K per sentence (delta method)
    var = np.clip(1.0 / ess - 1.0 / K, 0.0, None).sum()
    return dict(sentences=n, words=n_words, elbo=float(elbo.mean()), rec=float((elbo - kl - kl_c).mean()),
                kl=float(kl.mean()), kl_labels=float(kl_c.mean()), iw_nll=float(iw_nll.mean()), iw_nll_se=math.sqrt(var) / n,
                ess=float(ess.mean()), ppl=math.exp(min(float(iw_nll.sum()) / n_words, 700.0)),
                ppl_elbo=math.exp(min(float(elbo.sum()) / n_words, 700.0)))


def evaluate_elbo(model, corpus: Corpus, max_tokens: int = 8000, device="cpu", seed: int = 0,
                  svi_steps: int = 0, svi_lr: float = SVI_LR) -> dict:
    """The cheap validation pass used during training: one z ~ q(z|x) per sentence (of the
    posterior refined as training refines it, with --svi-steps)."""
    r = evaluate(model, corpus, iw_samples=1, max_tokens=max_tokens, device=device, seed=seed, with_mi=False,
                 svi_steps=svi_steps, svi_lr=svi_lr)
    figures = {k: getattr(r, k) for k in ("sentences", "words", "tokens", "elbo", "rec", "kl", "au",
                                          "latent", "ppl_elbo")}
    if r.accuracy is not None:       # a labelled model: q(c|x)'s accuracy on the labelled sentences
        figures.update(kl_labels=r.kl_labels, accuracy=r.accuracy)
    return figures
