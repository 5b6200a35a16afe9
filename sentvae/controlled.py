"""Hu et al. 2017's generator terms ("Toward Controlled Generation of Text", ICML): a labelled
model's decoder taught to *show* the labels c it is given, and to keep z's content, by judging its
own soft-decoded sentences.

The M2 objective (sentvae/semisup.py) lets the decoder read c, but nothing makes it use c: a
decoder that can explain a sentence from z alone may ignore c (the bundled corpus's aspect:
docs/results/bundled.md). Hu et al. add, for codes z and labels c drawn anew,

    L_attr  = -E[ sum_a log q(c_a | x~) ]     x~ = G~_tau(z, c)   (--attr-weight lambda_c)
    L_indep = -E[ log q(z | x~) ]                                  (--indep-weight lambda_z)

where G~_tau is the decoder run on its own soft outputs: at each position the next input is the
expected embedding sum_w softmax(logits / tau)_w e_w (differentiable, unlike a sampled word), and
q(c|x~), q(z|x~) are the model's own classifier and encoder reading those soft embeddings. The
gradients of both terms train the generator only (the decoder, the output layer, the label
embeddings, the shared word embedding as the decoder uses it): the classifier and the encoder are
read with their weights held constant, as Hu et al.'s discriminator and encoder are in the
generator's step. L_attr asks the decoder to write sentences whose labels can be read back;
L_indep asks it not to write them by overwriting z (the independence constraint: z is recoverable
from the sentence generated with any c).

What is drawn: z is the batch's own posterior sample (detached; the posterior's codes are what
transfer decodes from, and are where p(x|z) is trained), or with --soft-codes prior z ~ p(z) as
Hu et al. draw it (what `sample` decodes from), and c from the model's p(c) (--label-prior;
uniform: each attribute independently), whatever the sentence's own labels (so many draws are
transfers). The soft sentences are the batch's length T; each is read up to its first argmax EOS.
--sleep-weight adds Hu et al.'s sleep step, L_u = -E[log q(c|x~)] + beta H(q(c|x~)) (their minimum-
entropy term, --sleep-entropy beta): the classifier also learns from the generated sentences, with
the labels they were generated with. Hu et al.'s discriminator is a network of its own reading
sampled sentences; here it is q(c|x)'s heads, reading the encoder's summary of the soft sentence
(detached: the encoder is q(z|x)'s too, and fake sentences should not move it), so only the heads
learn from L_u.
"""

import torch
import torch.nn.functional as F
from torch.func import functional_call

from sentvae.decode import NEVER
from sentvae.errors import SentvaeError
from sentvae.tokenizer import BOS, EOS


def refuse(cfg, labelled: bool) -> None:
    """One line for a model Hu et al.'s terms cannot apply to (before anything is written). A labelled
    model has a continuous z already (config.py refuses labels beside a categorical latent)."""
    if not labelled and (cfg.attr_weight or cfg.indep_weight or cfg.sleep_weight):
        flag = "--attr-weight" if cfg.attr_weight else "--indep-weight" if cfg.indep_weight else "--sleep-weight"
        raise SentvaeError(f"{flag}: needs a labelled model (--label-field ...): the terms judge "
                           "sentences decoded with labels drawn anew")


def frozen(module) -> dict:
    """The module's parameters as constants: a loss read through it trains what feeds it, not it."""
    return {name: p.detach() for name, p in module.named_parameters()}


def soft_decode(model, z: torch.Tensor, c: torch.Tensor, steps: int, tau: float):
    """The decoder on its own soft outputs: z (B, nz), c (B, A) value indices -> the soft sentence as
    its readers see it (B, steps, E) (position t: the expected embedding of the t-th word under
    softmax(logits_t / tau)), and each sentence's length (B,): up to its first argmax EOS, included.

    The decoder reads its soft words through the embedding table (the generator's own use of it:
    gradient), the readers through a detached copy: otherwise the judges' losses would move the
    word embeddings the encoder reads real sentences with, training the encoder by the back door."""
    B = z.size(0)
    state = model.init_state(z, c)
    inp = model.emb(torch.full((B,), BOS, dtype=torch.long, device=z.device)).unsqueeze(1)   # (B, 1, E)
    never = torch.tensor(NEVER, device=z.device)
    words, eos = [], []
    for _ in range(steps):
        hidden, state = model.decoder.step(inp, state)                # (B, 1, H)
        logits = model.logits(hidden[:, 0]).float()                   # (B, V)
        logits = logits.index_fill(1, never, -torch.inf)              # PAD and BOS: never outputs, as in decoding
        probs = F.softmax(logits / tau, dim=-1)
        probs = probs.to(model.emb.weight.dtype)
        inp = (probs @ model.emb.weight).unsqueeze(1)                # (B, 1, E) the decoder's next input
        words.append(probs @ model.emb.weight.detach())              # (B, E) what the readers see
        eos.append(logits.argmax(dim=-1) == EOS)
    soft = torch.stack(words, dim=1)                                  # (B, steps, E)
    ended = torch.stack(eos, dim=1)                                   # (B, steps)
    first = torch.where(ended.any(dim=1), ended.int().argmax(dim=1), steps - 1)    # (B,) no EOS: all of it
    return soft, first + 1


def judged(model, z: torch.Tensor, c: torch.Tensor, steps: int, tau: float) -> tuple[list, object, torch.Tensor]:
    """The soft sentences decoded from (z, c), read by the classifier and the encoder with their weights
    held constant: -> (log q(c_a | x~) per attribute, A x (B, V_a); q(z | x~), a posterior of B; the
    encoder's summary of x~ (B, H), which the sleep step's heads read)."""
    soft, lengths = soft_decode(model, z, c, steps, tau)
    dummy = torch.zeros(soft.shape[:2], dtype=torch.long, device=z.device)   # the encoder embeds through `embed`
    summary = functional_call(model.encoder, frozen(model.encoder), (dummy, lengths, lambda _: soft))
    log_qc = functional_call(model.classifier, frozen(model.classifier), (summary,))
    q = functional_call(model.to_posterior, frozen(model.to_posterior), (summary,))
    return log_qc, q, summary


def generator_loss(model, terms, batch, cfg) -> tuple[torch.Tensor, dict]:
    """lambda_c L_attr + lambda_z L_indep + lambda_u L_sleep for one batch (means over its sentences) and
    their figures. model: the SentenceVAE (unwrapped); terms: its forward's Terms (z: the codes decoded)."""
    B, T = batch.tokens.size(0), batch.tokens.size(1) - 1
    z = terms.z[:, 0].detach()                                        # (B, nz) the batch's own codes
    if cfg.soft_codes == "prior":
        z = model.prior.sample(B).to(z.device, z.dtype)               # (B, nz) ~ p(z)
    c = model.label_prior.sample(torch.full((B, len(model.conditioner.sizes)), -1, device=z.device))   # (B, A) ~ p(c)
    generator = bool(cfg.attr_weight or cfg.indep_weight)
    with torch.set_grad_enabled(generator and torch.is_grad_enabled()):    # the sleep step alone: no generator graph
        log_qc, q, summary = judged(model, z, c, T, cfg.soft_tau)
    figures, loss = {}, torch.zeros((), device=z.device)
    if generator:
        attr = sum(-lq.gather(1, c[:, a:a + 1]).squeeze(1) for a, lq in enumerate(log_qc))   # (B,)
        indep = -q.log_prob(z.float())                                # (B,)
        hits = torch.stack([lq.argmax(dim=1) == c[:, a] for a, lq in enumerate(log_qc)], dim=1)   # (B, A)
        loss = cfg.attr_weight * attr.mean() + cfg.indep_weight * indep.mean()
        figures = {"attr_ce": attr.mean().detach(), "attr_acc": hits.float().mean().detach(),
                   "indep_nll": indep.mean().detach()}
    if cfg.sleep_weight:
        more, sleep = sleep_loss(model, summary.detach(), c, cfg.sleep_entropy)
        loss, figures = loss + cfg.sleep_weight * more, {**figures, **sleep}
    return loss, figures


def sleep_loss(model, summary: torch.Tensor, c: torch.Tensor, beta: float) -> tuple[torch.Tensor, dict]:
    """Hu et al.'s sleep step, L_u: the classifier's heads (live weights) read the encoder's summary of
    each generated sentence (B, H), detached, and learn the labels c (B, A) it was generated with:
    minimising their cross-entropy + beta x q's entropy (minimum entropy: confident readings).
    -> (the mean over the batch, figures)."""
    log_qc = model.classifier(summary)                                # A x (B, V_a), trainable
    ce = sum(-lq.gather(1, c[:, a:a + 1]).squeeze(1) for a, lq in enumerate(log_qc))          # (B,)
    entropy = sum(-(lq.exp() * lq).sum(dim=1) for lq in log_qc)                               # (B,)
    return (ce + beta * entropy).mean(), {"sleep_ce": ce.mean().detach(), "sleep_entropy": entropy.mean().detach()}
