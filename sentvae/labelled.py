"""Labels inside the model: the decoder conditioned on (z, c), the classifier q(c|x), and the
exact marginalisation over the values of the labels a sentence lacks (Kingma et al. 2014, M2).

A labelled model (a ModelConfig with `labels`, from the training data's LabelVocab) has A
attributes, attribute a taking V_a values. Its generative model is p(c) p(z) p(x | z, c), with p(c)
uniform over each attribute's values, independently, or the training rows' joint frequencies
(--label-prior, sentvae/label_prior.py); its inference model q(z|x) q(c|x), with
q(c|x) = prod_a q(c_a|x) a softmax head per attribute on the encoder's summary (beside the
posterior head). z is read from x alone, so a sentence's z can be decoded with any c: transfer.

- `LabelCode`, the conditioner (SentenceVAE.condition): the decoder reads [z; e_1(c_1); ...;
  e_A(c_A)], each e_a a learnt embedding of attribute a's values. c comes as value indices
  (B, A) or as probabilities (a list of A tensors (B, V_a), each row summing to 1: the expected
  embedding, exact for a one-hot row), which generation uses to hold, mix or interpolate labels.
- `label_terms`: for one batch, every assignment of the labels each sentence lacks, decoded
  with the sentence's z samples: log p(x | z_s, c) for each (sentence, assignment). A sentence
  labelled for every attribute costs one decoder pass, as an unlabelled model's; one lacking
  the attributes U costs prod_{a in U} V_a passes (all values, exactly; no sampling, no
  relaxation). `check_passes` refuses, before training, data whose sentences would need more
  than MAX_PASSES (10 attributes of 2 values: 1,024; yelp's one of 2: 2).
- `relaxed_terms` (training with --estimator gumbel): one decoder pass per sentence, its missing
  labels a Gumbel-softmax sample of q(c|x) (Jang et al. 2017) instead of every value: cheaper where
  the sum is large, biased (the decoder reads a mixture of label embeddings), and validation and
  eval still sum exactly. docs/guide/labels.md compares the two.
- From those, `LabelTerms.expected` is sum_c q(c|x) log p(x|z, c), M2's reconstruction term for
  the attributes a sentence lacks (its own labels for the rest), and `LabelTerms.marginal` is
  log sum_c p(c|own) p(x|z, c) = log p(x|z, own) with the missing labels marginalised under the prior,
  which the importance-weighted likelihood uses (sentvae/evaluate.py).

What the figures bound, per sentence: -log p(x | the labels it has), all labels marginalised out
for an unlabelled one; so a labelled sentence's -ELBO and IW-NLL are of p(x|c), not p(x).
"""

import math
from dataclasses import dataclass

import torch
import torch.nn as nn
import torch.nn.functional as F

from sentvae.categorical import gumbel_softmax
from sentvae.errors import SentvaeError
from sentvae.label_vocab import UNLABELLED

# Decoder passes for one sentence (the product of the sizes of the attributes it lacks) above
# which training is refused: each pass is a full decoding of the sentence.
MAX_PASSES = 1024


class LabelCode(nn.Module):
    """The conditioner of a labelled model: [z; e_1(c_1); ...; e_A(c_A)] (B, nz + A * dim)."""

    def __init__(self, sizes: list[int], dim: int):
        super().__init__()
        self.sizes = list(sizes)
        self.embeddings = nn.ModuleList(nn.Embedding(v, dim) for v in self.sizes)

    def forward(self, z: torch.Tensor, c=None) -> torch.Tensor:
        if c is None:
            raise ValueError("a labelled model's decoder reads the labels c beside z")
        parts = [z]
        for a, emb in enumerate(self.embeddings):
            if isinstance(c, (list, tuple)):       # probabilities (B, V_a): the expected embedding
                parts.append(c[a].to(emb.weight.dtype) @ emb.weight)
            else:                                  # value indices (B, A)
                parts.append(emb(c[:, a]))
        return torch.cat([p.to(z.dtype) for p in parts], dim=-1)


class LabelClassifier(nn.Module):
    """q(c|x): a softmax head per attribute on the encoder's summary."""

    def __init__(self, summary: int, sizes: list[int]):
        super().__init__()
        self.heads = nn.ModuleList(nn.Linear(summary, v) for v in sizes)

    def forward(self, summary: torch.Tensor) -> list[torch.Tensor]:
        """summary (B, H) -> log q(c_a|x) for each attribute, A tensors (B, V_a), float32."""
        return [F.log_softmax(head(summary).float(), dim=-1) for head in self.heads]


def combinations(labels: torch.Tensor, sizes: list[int]):
    """Every assignment of the labels each sentence lacks, its own labels kept.

    labels (B, A): value indices, UNLABELLED (-1) where missing. -> rows (R,): the sentence of each
    assignment; combos (R, A): the assignment, complete; slot (R,): its place among its sentence's
    assignments. A sentence's assignments are contiguous; R = sum over sentences of prod V_a over
    the attributes it lacks."""
    B, A = labels.shape
    device = labels.device
    missing = labels < 0                                          # (B, A)
    rows, combos, slots = [], [], []
    for pattern in torch.unique(missing.to(torch.uint8), dim=0).bool():
        members = (missing == pattern).all(dim=1).nonzero().squeeze(1)       # (n,)
        free = pattern.nonzero().squeeze(1).tolist()
        if free:
            ranges = [torch.arange(sizes[a], device=device) for a in free]
            grid = torch.cartesian_prod(*ranges).view(-1, len(free))         # (G, |free|)
        else:
            grid = torch.zeros(1, 0, dtype=torch.long, device=device)
        G, n = grid.size(0), members.numel()
        c = labels[members].repeat_interleave(G, dim=0)                      # (n * G, A)
        c[:, free] = grid.repeat(n, 1)
        rows.append(members.repeat_interleave(G))
        combos.append(c)
        slots.append(torch.arange(G, device=device).repeat(n))
    return torch.cat(rows), torch.cat(combos), torch.cat(slots)


def passes(labels, sizes: list[int]):
    """Decoder passes each sentence needs: prod V_a over the attributes it lacks. labels (N, A)."""
    import numpy as np
    labels = np.asarray(labels)
    sizes = np.asarray(sizes, dtype=np.float64)
    return np.prod(np.where(labels < 0, sizes, 1.0), axis=1) if labels.size else np.ones(len(labels))


def check_passes(labels, vocab, where: str) -> None:
    """Refuse data whose sentences would each cost more than MAX_PASSES decoder passes."""
    sizes = [len(vocab.values[a]) for a in vocab.attributes]
    need = passes(labels, sizes)
    if len(need) and need.max() > MAX_PASSES:
        i = int(need.argmax())
        lacking = [f"{a} ({len(vocab.values[a])})" for a, v in zip(vocab.attributes, labels[i]) if v < 0]
        raise SentvaeError(f"{where}: sentence {i + 1} lacks the labels {', '.join(lacking)}: marginalising "
                           f"them exactly takes {int(need[i]):,} decoder passes, more than {MAX_PASSES:,}; "
                           "label it, or train with fewer attributes")


@dataclass
class Classified:
    """What every way of handling the labels shares: q(c|x) of the batch and its own labels."""
    log_probs: list           # A x (B, V_a): log q(c_a|x)
    labels: torch.Tensor      # (B, A) the sentences' own labels, -1 where missing
    prior: object             # p(c), the model's LabelPrior

    @property
    def batch(self) -> int:
        return self.labels.size(0)

    def kl(self) -> torch.Tensor:
        return self.prior.kl(self.log_probs, self.labels)

    def cross_entropy(self) -> tuple[torch.Tensor, torch.Tensor]:
        """-> (B, A) -log q(c_a = the label | x), 0 where unlabelled, and the (B, A) labelled mask."""
        known = self.labels >= 0
        ce = torch.stack([-logq.gather(1, self.labels[:, a].clamp(min=0).unsqueeze(1)).squeeze(1)
                          for a, logq in enumerate(self.log_probs)], dim=1)     # (B, A)
        return ce * known, known


@dataclass
class RelaxedTerms(Classified):
    """One batch's label terms with the missing labels relaxed (--estimator gumbel): each sentence
    decoded once, with its own labels one-hot and the others a Gumbel-softmax sample y ~ q(c_a|x)
    (the decoder reads the expected label embedding under y). ll estimates M2's
    sum_c q(c|x) log p(x|z, c) with a bias that vanishes as tau -> 0 (and a variance that grows)."""
    ll: torch.Tensor          # (B, S) log p(x | z_s, c~)

    def expected(self) -> torch.Tensor:
        return self.ll


@dataclass
class LabelTerms(Classified):
    """One batch's label terms: every (sentence, assignment of its missing labels) decoded."""
    rows: torch.Tensor        # (R,) the sentence of each assignment
    slot: torch.Tensor        # (R,) its place among its sentence's assignments
    combos: torch.Tensor      # (R, A) the assignment
    ll: torch.Tensor          # (R, S) log p(x | z_s, c)
    log_q: torch.Tensor       # (R,) log q(c's missing part | x)
    log_p: torch.Tensor       # (R,) log p(c's missing part | the sentence's own labels)

    def expected(self) -> torch.Tensor:
        """(B, S) sum over the missing labels' values of q(c|x) log p(x|z_s, c) (M2)."""
        weighted = self.log_q.exp().unsqueeze(1) * self.ll                  # (R, S)
        return self.ll.new_zeros(self.batch, self.ll.size(1)).index_add(0, self.rows, weighted)

    def marginal(self) -> torch.Tensor:
        """(B, S) log sum over the missing labels' values of p(c) p(x|z_s, c) = log p(x | z_s, own labels)."""
        G = int(self.slot.max()) + 1
        dense = self.ll.new_full((self.batch, G, self.ll.size(1)), -math.inf)    # (B, G, S)
        dense[self.rows, self.slot] = self.log_p.unsqueeze(1) + self.ll
        return torch.logsumexp(dense, dim=1)



def correct(log_probs: list, labels: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """-> (A,) how many labelled sentences q(c|x)'s argmax gets right, and (A,) how many are labelled."""
    known = labels >= 0
    hits = torch.stack([(logq.argmax(dim=1) == labels[:, a]) & known[:, a]
                        for a, logq in enumerate(log_probs)], dim=1)
    return hits.sum(dim=0), known.sum(dim=0)


def label_terms(model, log_probs: list, z: torch.Tensor, inp: torch.Tensor, tgt: torch.Tensor,
                labels: torch.Tensor | None) -> LabelTerms:
    """Decode every (sentence, assignment of its missing labels) with the sentence's S samples.
    z (B, S, nz); inp, tgt (B, T): the decoder's input and targets; labels (B, A) or None (none known)."""
    B, S = z.shape[:2]
    sizes = model.conditioner.sizes
    labels = given(labels, B, len(sizes), z.device)
    rows, combos, slot = combinations(labels, sizes)
    R = rows.numel()
    zr = z[rows].reshape(R * S, -1)                                           # (R*S, nz)
    ll = model.log_likelihood(zr, inp[rows].repeat_interleave(S, dim=0), tgt[rows].repeat_interleave(S, dim=0),
                              combos.repeat_interleave(S, dim=0)).view(R, S).float()
    missing = labels[rows] < 0                                                # (R, A)
    log_q = torch.zeros(R, device=z.device)
    for a, logq in enumerate(log_probs):
        log_q = log_q + torch.where(missing[:, a], logq[rows, combos[:, a]], torch.zeros_like(log_q))
    log_p = model.label_prior.log_conditional(rows, combos, labels)          # (R,) log p(c_missing | c_own)
    return LabelTerms(log_probs, labels, model.label_prior, rows, slot, combos, ll, log_q, log_p)


def relaxed_terms(model, log_probs: list, z: torch.Tensor, inp: torch.Tensor, tgt: torch.Tensor,
                  labels: torch.Tensor | None, tau: float, hard: bool = False) -> RelaxedTerms:
    """Decode each sentence once, with its own labels one-hot and each missing one a Gumbel-softmax
    sample of q(c_a|x) at temperature tau (hard: the one-hot of its argmax forward, the relaxed
    sample's gradient back; Jang et al. 2017's straight-through). The noise comes from the default
    generator (training's stream: an exact resume restores it). z (B, S, nz); inp, tgt (B, T)."""
    B, S = z.shape[:2]
    labels = given(labels, B, len(log_probs), z.device)
    probs = []
    for a, logq in enumerate(log_probs):                                      # (B, V_a)
        y, _ = gumbel_softmax(logq, torch.rand_like(logq), tau, hard)
        own = F.one_hot(labels[:, a].clamp(min=0), logq.size(1)).to(y.dtype)
        y = torch.where((labels[:, a] >= 0).unsqueeze(1), own, y)
        probs.append(y.repeat_interleave(S, dim=0))                           # (B*S, V_a)
    ll = model.log_likelihood(z.reshape(B * S, -1), inp.repeat_interleave(S, dim=0),
                              tgt.repeat_interleave(S, dim=0), probs).view(B, S).float()
    return RelaxedTerms(log_probs, labels, model.label_prior, ll)


def given(labels: torch.Tensor | None, B: int, A: int, device) -> torch.Tensor:
    """A batch's labels (B, A), all UNLABELLED where the data has none (labels None)."""
    if labels is None:
        return torch.full((B, A), UNLABELLED, dtype=torch.long, device=device)
    return labels


def one_hot(c: torch.Tensor, sizes: list[int]) -> list[torch.Tensor]:
    """Value indices (B, A) -> A probability tensors (B, V_a), one-hot."""
    return [F.one_hot(c[:, a], v).float() for a, v in enumerate(sizes)]


def index_labels(c, index: torch.Tensor):
    """The rows `index` of labels given as indices (B, A), probabilities (A x (B, V_a)) or None."""
    if c is None:
        return None
    if isinstance(c, (list, tuple)):
        return [p[index] for p in c]
    return c[index]
