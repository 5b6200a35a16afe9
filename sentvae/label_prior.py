"""p(c), a labelled model's prior over its labels (`--label-prior`; sentvae/labelled.py has the rest).

- uniform (Kingma et al. 2014's M2): each attribute's values equally likely, independently.
- joint: the labelled training rows' frequency of each combination of values, add-one smoothed:
  p(c) = (n_c + 1) / (N + G), over the G = prod_a V_a combinations, N the rows labelled for every
  attribute. Attributes that depend on each other in the data keep doing so in the model: the
  bundled grammar makes no progressive wh-question and no future perfect, so under the uniform
  prior `sample --label aspect=progressive` asks a third of the time for a wh-question the decoder
  never saw, and under the joint one (almost) never.

What the prior enters (the same code for both):
- the values a partly labelled sentence lacks are marginalised under p(c_missing | c_own), the
  prior conditioned on the labels it has (`log_conditional`); for the uniform prior that is
  prod 1 / V_a over the missing attributes, whatever it has;
- the label KL of the ELBO: KL(q(c_missing|x) || p(c_missing | c_own)), q factorised over the
  attributes (`kl`): in closed form per attribute for the uniform prior, over the whole table
  (B x G) for the joint one;
- the labels `sample` draws where none is asked (`sample`): from p(c_free | c_asked).

The counts live in the checkpoint with the label vocabulary (ModelConfig.labels["counts"]), so a
model samples what it was trained with; a checkpoint without them is uniform.
"""

import math

import numpy as np
import torch
import torch.nn.functional as F

from sentvae.errors import SentvaeError

# Combinations of label values above which --label-prior joint is refused: the table is one entry per
# combination, and the label KL of a training batch of B sentences builds B x G tables (kept for backward).
MAX_COMBINATIONS = 10_000


def joint_counts(labels, sizes: list[int], source: str) -> list[int]:
    """How many rows of `labels` (N, A value indices, -1 where missing) take each combination of values,
    flattened in C order (attribute 0 slowest). Only rows labelled for every attribute count."""
    G = math.prod(sizes)
    if G > MAX_COMBINATIONS:
        raise SentvaeError(f"--label-prior joint: the labels take {G:,} combinations of values, more than "
                           f"{MAX_COMBINATIONS:,}; use --label-prior uniform")
    labels = np.asarray(labels, dtype=np.int64).reshape(-1, len(sizes))
    full = labels[(labels >= 0).all(axis=1)]                               # (N, A)
    if len(full) == 0:
        raise SentvaeError(f"--label-prior joint: no row of {source} has every label "
                           f"({len(sizes)} attributes), so the data says nothing of how they go together; "
                           "use --label-prior uniform")
    flat = np.ravel_multi_index(full.T, sizes) if len(sizes) > 1 else full[:, 0]
    return np.bincount(flat, minlength=G).tolist()


class LabelPrior:
    """p(c) over A attributes of sizes V_a: `log_table` (V_1, ..., V_A) holds log p(c), float64 on the CPU."""

    def __init__(self, sizes: list[int], counts: list[int] | None = None):
        self.sizes = list(sizes)
        self.kind = "uniform" if counts is None else "joint"
        if counts is None:
            table = torch.full(self.sizes, -sum(math.log(v) for v in self.sizes), dtype=torch.float64)
        else:
            n = torch.tensor(counts, dtype=torch.float64)
            if n.numel() != math.prod(self.sizes) or (n < 0).any():
                raise SentvaeError("checkpoint: its label counts do not match its label vocabulary")
            table = ((n + 1) / (n.sum() + n.numel())).log().view(self.sizes)
        self.log_table = table
        self._on = {}                       # device -> the flattened table there

    @classmethod
    def from_config(cls, labels: dict, kind: str) -> "LabelPrior":
        sizes = [len(values) for _, values in labels["attributes"]]
        if kind == "joint" and labels.get("counts") is None:
            raise SentvaeError("--label-prior joint: the model carries no label counts")
        return cls(sizes, labels.get("counts") if kind == "joint" else None)

    def _flat(self, device) -> torch.Tensor:
        key = str(device)
        if key not in self._on:
            self._on[key] = self.log_table.reshape(-1).to(device)
        return self._on[key]

    def _index(self, combos: torch.Tensor) -> torch.Tensor:
        """(R, A) value indices -> (R,) their place in the flattened table."""
        flat = torch.zeros_like(combos[:, 0])
        for a, v in enumerate(self.sizes):
            flat = flat * v + combos[:, a]
        return flat

    def log_prob(self, combos: torch.Tensor) -> torch.Tensor:
        """(R, A) complete value indices -> (R,) log p(c), float32."""
        return self._flat(combos.device)[self._index(combos)].float()

    def marginal(self, a: int) -> torch.Tensor:
        """(V_a,) p(c_a)."""
        dims = [d for d in range(len(self.sizes)) if d != a]
        lt = self.log_table
        return (torch.logsumexp(lt, dim=dims) if dims else lt).exp().float()

    def log_conditional(self, rows: torch.Tensor, combos: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        """(R,) log p(c_missing | c_own) of each assignment in `combinations(labels, sizes)`'s output:
        rows (R,) its sentence, combos (R, A) the assignment; labels (B, A) the sentences' own."""
        missing = labels[rows] < 0                                             # (R, A)
        if self.kind == "uniform":                                             # prod 1/V_a, missing a
            logs = torch.tensor([math.log(v) for v in self.sizes], device=combos.device)
            return -(missing.float() * logs).sum(dim=1)
        lp = self.log_prob(combos)                                             # (R,) log p(c)
        B = labels.size(0)                                                     # log p(c_own): the sum over
        norm = torch.full((B,), -math.inf, device=lp.device).scatter_reduce(   # the sentence's assignments
            0, rows, lp, reduce="amax")
        shifted = (lp - norm[rows]).exp()
        total = torch.zeros(B, device=lp.device).index_add(0, rows, shifted)
        return lp - (norm + total.log())[rows]

    def kl(self, log_probs: list, labels: torch.Tensor) -> torch.Tensor:
        """(B,) KL(q(c_missing|x) || p(c_missing | c_own)), q = prod_a q(c_a|x) over the attributes a
        sentence lacks (0 for a fully labelled one). log_probs: A x (B, V_a) log q(c_a|x)."""
        if self.kind == "uniform":                       # sum over missing a of KL(q_a || U(V_a))
            out = torch.zeros(labels.size(0), device=labels.device)
            for a, logq in enumerate(log_probs):
                kl_a = (logq.exp() * (logq + math.log(logq.size(1)))).sum(dim=1)
                out = out + torch.where(labels[:, a] < 0, kl_a, torch.zeros_like(kl_a))
            return out
        B, device = labels.size(0), labels.device
        weight = torch.ones(B, 1, device=device)             # (B, G so far) q(c) of each combination,
        owns = torch.ones(B, 1, device=device)               # and whether it has the sentence's own labels
        neg_entropy = torch.zeros(B, device=device)
        for a, logq in enumerate(log_probs):                 # C order: attribute 0 slowest, as the table
            missing = (labels[:, a] < 0).unsqueeze(1)                              # (B, 1)
            own = F.one_hot(labels[:, a].clamp(min=0), self.sizes[a]).float()      # (B, V_a)
            r = torch.where(missing, logq.exp(), own)
            weight = (weight.unsqueeze(2) * r.unsqueeze(1)).reshape(B, -1)
            owns = (owns.unsqueeze(2) * torch.where(missing, torch.ones_like(own), own).unsqueeze(1)).reshape(B, -1)
            neg_entropy = neg_entropy + missing.squeeze(1) * (logq.exp() * logq).sum(dim=1)
        log_p = self._flat(device).float()                                         # (G,) log p(c)
        log_own = torch.logsumexp(log_p + torch.log(owns), dim=1)                  # (B,) log p(c_own)
        return neg_entropy - (weight * log_p).sum(dim=1) + log_own

    def sample(self, known: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        """(n, A) value indices, -1 where free -> every free one drawn from p(c_free | c_known).
        The uniform prior draws each attribute with randint, asked or not; the joint one one uniform
        per row, inverted through the row's conditional CDF: in both, the stream a generator gives
        does not depend on which attributes are asked."""
        n, device = known.size(0), known.device
        if self.kind == "uniform":
            draws = [torch.randint(v, (n,), generator=generator, device=device if generator is None else "cpu")
                     for v in self.sizes]
            drawn = torch.stack(draws, dim=1).to(device)
            return torch.where(known >= 0, known, drawn)
        u = torch.rand(n, generator=generator, dtype=torch.float64,
                       device=device if generator is None else "cpu").to(device)      # (n,)
        every = self._every(device)                                               # (G, A)
        asks, which = torch.unique(known, dim=0, return_inverse=True)             # (U, A): one CDF per request
        fits = ((asks.unsqueeze(1) < 0) | (asks.unsqueeze(1) == every.unsqueeze(0))).all(dim=2)   # (U, G)
        cdf = (self._flat(device).exp().unsqueeze(0) * fits).cumsum(dim=1)      # (U, G) unnormalised
        out = torch.empty_like(known)
        for start in range(0, n, 1024):                                          # (1024, G) at a time
            rows = cdf[which[start:start + 1024]]
            pick = torch.searchsorted(rows, (u[start:start + 1024] * rows[:, -1]).unsqueeze(1), right=True)
            out[start:start + 1024] = every[pick.squeeze(1).clamp(max=every.size(0) - 1)]
        return out

    def _every(self, device) -> torch.Tensor:
        """(G, A) every combination of values, in the table's (C) order."""
        flat = torch.arange(self.log_table.numel(), device=device)
        cols = []
        for v in reversed(self.sizes):                   # the last attribute varies fastest
            cols.append(flat % v)
            flat = flat // v
        return torch.stack(cols[::-1], dim=1)
