"""An inverse autoregressive flow posterior (Kingma et al. 2016, IAF).

    z_0 = mu + sigma * eps                      a diagonal Gaussian, as the plain posterior
    [m_t, s_t] = MADE_t(z_{t-1}, h)             output i sees z_{t-1, <i} and the context h only
    g_t = sigmoid(s_t + 2)                      0.88 at the start (m = 0): a contraction, z_T = 0.88^T z_0
    z_t = g_t * z_{t-1} + (1 - g_t) * m_t       (the numerically stable, LSTM-like update)
    log q(z_T|x) = log N(z_0; mu, sigma) - sum_t sum_i log g_t,i

The Jacobian of each step is triangular with diagonal g_t, so log q is exact. The order of the
dimensions is reversed between steps. log_prob(z) of an arbitrary z inverts the flow, one
dimension at a time (each step's inverse is sequential in the dimensions): nz MADE passes a step.

No closed-form mean: E_q[z] (a sentence's code, active units) is estimated from MEAN_SAMPLES
draws of one fixed base noise that every sentence shares (sentvae.noise.SeededNoise, one stream),
so it is the same in every batch; and a dimension the flow ignores gets exactly no spread across
sentences. Its Monte Carlo variance is about Var_q[z] / MEAN_SAMPLES (<= 1/256 ~ 0.004 where
the posterior is the prior), under active units' threshold of 0.01.
"""

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

from sentvae.noise import SeededNoise
from sentvae.posteriors import Gaussian, Posterior

GATE_BIAS = 2.0
MEAN_SAMPLES = 256
MEAN_SEED = 7_919


class MaskedLinear(nn.Linear):
    def __init__(self, d_in: int, d_out: int, mask: torch.Tensor):
        super().__init__(d_in, d_out)
        self.register_buffer("mask", mask, persistent=False)

    def forward(self, x):
        return F.linear(x, self.weight * self.mask, self.bias)


class MADE(nn.Module):
    """(z (..., nz), h (..., ctx)) -> m, s (..., nz), output i a function of z_<i and h only
    (Germain et al. 2015 masks; the context enters the first hidden layer)."""

    def __init__(self, latent: int, context: int, hidden: int):
        super().__init__()
        d_in = torch.arange(1, latent + 1)                                   # input degrees 1..nz
        d_hid = torch.arange(hidden) % max(latent - 1, 1) + 1                # hidden degrees 1..nz-1
        self.inp = MaskedLinear(latent, hidden, (d_hid.unsqueeze(1) >= d_in.unsqueeze(0)).float())
        self.ctx = nn.Linear(context, hidden, bias=False)
        self.mid = MaskedLinear(hidden, hidden, (d_hid.unsqueeze(1) >= d_hid.unsqueeze(0)).float())
        d_out = d_in.repeat(2)
        self.out = MaskedLinear(hidden, 2 * latent, (d_out.unsqueeze(1) > d_hid.unsqueeze(0)).float())
        nn.init.zeros_(self.out.weight)             # the flow starts as z_t = 0.88 z_{t-1} (g = sigmoid(2), m = 0)
        nn.init.zeros_(self.out.bias)

    def forward(self, z, h):
        a = F.relu(self.inp(z) + self.ctx(h))
        a = F.relu(self.mid(a))
        return self.out(a).chunk(2, dim=-1)


class IAFFlow(nn.Module):
    def __init__(self, latent: int, context: int, steps: int, hidden: int):
        super().__init__()
        self.latent = latent
        self.steps = nn.ModuleList(MADE(latent, context, hidden) for _ in range(steps))

    def forward(self, z, h):
        """z_0 (..., nz), h (..., ctx) -> z_T, sum of log g (...), in z's dtype (computed in the weights')."""
        dtype = z.dtype
        z, h = z.to(self.dtype), h.to(self.dtype)
        log_g = z.new_zeros(z.shape[:-1])
        for t, made in enumerate(self.steps):
            if t:
                z = z.flip(-1)                      # reverse the order between steps
            m, s = made(z, h)               # bf16 under autocast: the update and log g in z's float32
            s = s.to(z.dtype) + GATE_BIAS
            gate = torch.sigmoid(s)
            z = gate * z + (1 - gate) * m.to(z.dtype)
            log_g = log_g + F.logsigmoid(s).sum(dim=-1)
        return z.to(dtype), log_g.to(dtype)

    @property
    def dtype(self):
        return self.steps[0].out.weight.dtype

    def inverse(self, z, h):
        """z_T (..., nz) -> z_0 and the sum of log g along the way: dimension by dimension."""
        dtype = z.dtype
        z, h = z.to(self.dtype), h.to(self.dtype)
        log_g = z.new_zeros(z.shape[:-1])
        for t in reversed(range(len(self.steps))):
            made = self.steps[t]
            prev = torch.zeros_like(z)
            for i in range(self.latent):            # output i depends on prev[:i] only
                m, s = made(prev, h)
                gate = torch.sigmoid(s[..., i] + GATE_BIAS)
                col = (z[..., i] - (1 - gate) * m[..., i]) / gate
                prev = torch.cat([prev[..., :i], col.unsqueeze(-1), prev[..., i + 1:]], dim=-1)
            m, s = made(prev, h)
            log_g = log_g + F.logsigmoid(s + GATE_BIAS).sum(dim=-1)
            z = prev.flip(-1) if t else prev
        return z.to(dtype), log_g.to(dtype)


class IAF(Posterior):
    """A Gaussian base (mu, logvar (B, nz)) through an IAF with context h (B, ctx)."""
    param_names = ("z", "mu", "logvar", "context")
    cheap_log_prob = False
    refinable = True        # the base's mu, logvar and the context; the flow's weights are the family's

    def __init__(self, base: Gaussian, context: torch.Tensor, flow: IAFFlow, code=None):
        self.base, self.context, self.flow = base, context, flow
        self.batch, self.dim = base.batch, base.dim
        self._code = code

    def rsample(self, noise):
        z0, log_q0 = self.base.rsample(noise)                               # (B, S, nz), (B, S)
        h = self.context.unsqueeze(1).expand(-1, z0.size(1), -1).to(z0.dtype)
        z, log_g = self.flow(z0, h)
        return z, log_q0 - log_g

    def log_prob(self, z):
        """z (..., B, nz) (broadcasting against the batch) -> (..., B), by inverting the flow."""
        lead = torch.broadcast_shapes(z.shape[:-1], (self.batch,))
        z = z.expand(*lead, self.dim)
        h = self.context.to(z.dtype).expand(*lead, self.context.size(-1))
        z0, log_g = self.flow.inverse(z, h)
        return self.base.log_prob(z0) - log_g

    def mean(self):
        """E_q[z] by MEAN_SAMPLES draws of the shared seeded base noise (see the module docstring)."""
        if self._code is None:
            with torch.no_grad():
                noise = SeededNoise(MEAN_SEED, np.zeros(self.batch, dtype=np.int64), 0, MEAN_SAMPLES,
                                    self.base.mu.device)
                self._code = self.rsample(noise)[0].mean(dim=1)
        return self._code

    def params(self):
        return {"z": self.mean(), **self.base.params(), "context": self.context}

    def free_params(self):
        return {**self.base.free_params(), "context": self.context}

    def with_params(self, p: dict) -> "IAF":
        return IAF(self.base.with_params(p), p["context"], self.flow)

    def index(self, rows):
        return IAF(self.base.index(rows), self.context[rows], self.flow,
                   None if self._code is None else self._code[rows])

    @staticmethod
    def cat(parts):
        codes = None if any(p._code is None for p in parts) else torch.cat([p._code for p in parts])
        return IAF(Gaussian.cat([p.base for p in parts]), torch.cat([p.context for p in parts]), parts[0].flow, codes)

    def to(self, device=None, dtype=None):
        return IAF(self.base.to(device, dtype), self.context.to(device, dtype), self.flow,
                   None if self._code is None else self._code.to(device, dtype))


class IAFHead(nn.Module):
    """h (B, S) -> IAF: a linear layer gives mu, logvar and the flow's context."""
    family = IAF

    def __init__(self, summary: int, latent: int, steps: int, hidden: int | None = None, context: int | None = None):
        super().__init__()
        self.latent = latent
        self.context = context or 2 * latent
        self.linear = nn.Linear(summary, 2 * latent + self.context)
        self.flow = IAFFlow(latent, self.context, steps, hidden or 4 * latent)

    def forward(self, h):
        mu, logvar, ctx = self.linear(h).split([self.latent, self.latent, self.context], dim=-1)
        return IAF(Gaussian(mu, logvar), ctx, self.flow)
