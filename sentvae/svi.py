"""Semi-amortized inference (Kim et al. 2018, SA-VAE): each sentence's posterior, as the encoder
gives it, refined by a few gradient steps on that sentence's own ELBO, the decoder fixed.

    lambda_0 = encoder(x)                                     the posterior's tensors (mu, logvar, ...)
    g_k = clip(grad_lambda f(lambda_k; eps_k))                f = -E_q log p(x|z) + w KL(q || p), one z
    v_k = MOMENTUM v_{k-1} + g_k,  lambda_{k+1} = lambda_k - lr v_k        (v_{-1} = 0)

The optimiser is the paper's: SGD with momentum 0.5, each gradient's norm clipped at 5
(harvardnlp/sa-vae: svi_lr 1, momentum 0.5, svi_max_grad_norm 5). Unlike their code, everything is
per sentence, so that a sentence's refinement does not depend on the batch it sits in: the loss
is the SUM of the sentences' -ELBOs (their batch mean made a step of lr / B per sentence), and the
norm is clipped per sentence and per parameter tensor (theirs: over the whole batch). Rows never
mix: the decoder reads each sentence alone.

The posteriors marked `refinable` are refined (Gaussian, IAF with its flow's weights held, a
mixture prior's q(c|x) too); each is rebuilt from new tensors by `with_params`. The others are
refused: the LM baseline's point latent has nothing to refine, a categorical's draws have no
reparameterised gradient, and a vMF's mean direction would need steps on the sphere.

Training (`--svi-steps`): the loss is that of the refined posterior, and its gradient flows
through the unrolled steps (autograd with create_graph=True: exact Hessian-vector products, where
the paper used finite differences) into the encoder, and through the path into the decoder too
(their train_n2n = 1). The refinement draws its noise from the stream training draws from (the
device's generator), so an exact resume holds. Evaluation (`eval --svi-steps`): no graph is kept,
and sentence i's noise for step k is sample k of its SeededNoise stream under seed + SEED_OFFSET,
independent of the importance samples that then measure the refined posterior.
"""

from contextlib import ExitStack

import numpy as np
import torch

from sentvae.errors import SentvaeError
from sentvae.kl import kl_divergence
from sentvae.noise import SeededNoise, StreamNoise
from sentvae.posteriors import wide

MOMENTUM = 0.5
CLIP = 5.0                  # per sentence and per parameter tensor (the paper: per tensor, over the batch)
SAMPLES = 1                 # z per sentence per step, as the paper
# The refinement's seeded streams: seed + this. torch's CPU generator keeps only the low 32 bits of
# a seed, so 2 ** 32 (the first choice) gave the importance samples' very streams; an odd offset
# changes the low 32 bits of every stream's seed (SeededNoise multiplies the seed by odd numbers).
SEED_OFFSET = 0x9E3779B9


def refuse_labels(steps: int) -> None:
    """A labelled model's ELBO sums over the labels a sentence lacks; the refinement's does not."""
    if steps > 0:
        raise SentvaeError("--svi-steps: not with labels (--label-field ...): the refinement's ELBO does not "
                           "sum over the labels a sentence lacks")


def check(steps: int, posterior_family: type) -> None:
    """Refuse, with one line, --svi-steps for a posterior it does not refine."""
    if steps and not getattr(posterior_family, "refinable", False):
        if posterior_family.__name__ == "Point":
            raise SentvaeError("--svi-steps: the LM baseline has no latent to refine")
        raise SentvaeError(f"--svi-steps: refines a Gaussian or IAF posterior (under either prior), "
                           f"not a {posterior_family.__name__} posterior")


def neg_elbo(model, q, inp: torch.Tensor, tgt: torch.Tensor, noise, weight: float = 1.0) -> torch.Tensor:
    """-ELBO of each sentence, -mean_s log p(x|z_s) + weight * KL(q || p), from the samples of
    `noise` (the KL in closed form where the pair has one): (B,), float32."""
    z, log_q = q.rsample(noise)                                           # (B, S, nz), (B, S)
    B, S = log_q.shape
    if S > 1:
        inp, tgt = inp.repeat_interleave(S, dim=0), tgt.repeat_interleave(S, dim=0)
    ll = model.log_likelihood(z.reshape(B * S, -1), inp, tgt).view(B, S).float()
    kl = kl_divergence(q, model.prior, z.float(), log_q.float()).total.float()
    return -ll.mean(dim=1) + weight * kl


def clip_rows(g: torch.Tensor, limit: float = CLIP) -> torch.Tensor:
    """Each row (sentence) of g (B, ...) scaled to a norm of at most `limit`."""
    norm = g.flatten(1).norm(dim=1).clamp_min(1e-12)                      # (B,)
    scale = (limit / norm).clamp(max=1.0)
    return g * scale.view(-1, *([1] * (g.dim() - 1)))


class Refiner:
    """steps gradient steps of size lr on each sentence's -ELBO (KL weighted by `weight`: the
    annealed weight in training, 1 in evaluation). through: keep the graph, so that the refined
    posterior is a differentiable function of the encoder's (training). seed: evaluation's seed
    (the refinement's own streams derive from it); None: draw from the device's generator."""

    def __init__(self, steps: int, lr: float, weight: float = 1.0, through: bool = False, seed: int | None = None):
        self.steps, self.lr, self.weight, self.through, self.seed = steps, lr, weight, through, seed

    def noise(self, step: int, sentences, batch: int, device):
        if sentences is None:
            return StreamNoise(batch, SAMPLES, device)
        return SeededNoise(self.seed + SEED_OFFSET, sentences, step * SAMPLES, SAMPLES, device)

    def refine(self, model, q, inp: torch.Tensor, tgt: torch.Tensor, sentences=None):
        """q (the encoder's posterior of B sentences) -> the refined posterior, same family.
        inp, tgt (B, T): the decoder's input and targets; sentences: their corpus indices
        (evaluation: each sentence's noise seeded by its index)."""
        if self.steps == 0:
            return q
        check(self.steps, type(q))
        params = {k: wide(v) for k, v in q.free_params().items()}        # lambda_0 (float32 under autocast)
        velocity = {k: torch.zeros_like(v) for k, v in params.items()}
        with ExitStack() as stack:
            stack.enter_context(torch.enable_grad())
            # cuDNN's RNN has no double backward and no backward outside training mode; the fused
            # attention kernels no double backward: the refinement runs on the plain kernels
            stack.enter_context(torch.backends.cudnn.flags(enabled=False))
            if self.through and inp.is_cuda:
                from torch.nn.attention import SDPBackend, sdpa_kernel
                stack.enter_context(sdpa_kernel(SDPBackend.MATH))
            for k in range(self.steps):
                if not self.through:
                    params = {n: v.detach().requires_grad_() for n, v in params.items()}
                elif not all(v.requires_grad for v in params.values()):
                    params = {n: v if v.requires_grad else v.detach().requires_grad_() for n, v in params.items()}
                f = neg_elbo(model, q.with_params(params), inp, tgt, self.noise(k, sentences, inp.size(0), inp.device),
                             self.weight)
                # the sum: sentence i's gradient is that of its own -ELBO, whatever the batch
                grads = torch.autograd.grad(f.sum(), list(params.values()), create_graph=self.through)
                for (n, v), g in zip(list(params.items()), grads):
                    velocity[n] = MOMENTUM * velocity[n] + clip_rows(g)
                    params[n] = v - self.lr * velocity[n]
        if not self.through:
            params = {n: v.detach() for n, v in params.items()}
        return q.with_params(params)


def refine_corpus(model, corpus, steps: int, lr: float, seed: int = 0, max_tokens: int = 2000, device="cpu"):
    """Every sentence's refined posterior (evaluation: no graph kept, seeded noise), float32 on
    the CPU, in corpus order. The model is used as it is (evaluate puts it in eval mode)."""
    from sentvae.corpus import collate, make_batches

    check(steps, model.to_posterior.family)
    refiner = Refiner(steps, lr, seed=seed)
    parts, order = [], []
    # evaluate runs under inference mode; its tensors could not enter a graph
    with torch.inference_mode(False):
        for idx in make_batches(corpus.lengths, max_tokens, shuffle=False):
            batch = collate(corpus, idx).to(device)
            x = batch.tokens
            with torch.no_grad():
                q = model.encode(x[:, 1:], batch.lengths).to(dtype=torch.float32)
            q = refiner.refine(model, q, x[:, :-1], x[:, 1:], sentences=idx)
            parts.append(q.to("cpu"))
            order.append(idx)
    where = torch.as_tensor(np.argsort(np.concatenate(order)))
    return type(parts[0]).cat(parts).index(where)

