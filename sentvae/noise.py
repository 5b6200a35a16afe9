"""Where a posterior's randomness comes from.

A posterior draws its samples as a function of base noise (standard normals, uniforms), and the
noise comes from one of two sources:

- `StreamNoise`: one generator (the default one of the device, or a given one). Training draws
  here: fast, and an exact resume restores it with the RNG state.
- `SeededNoise`: sentence i's samples from CPU generators seeded by (seed, i, block of BLOCK
  samples). Evaluation and codes draw here, so that a figure or a sentence's code depends neither
  on the batch it sits in, nor on how the K samples are chunked, nor on the device; and the first
  K samples are the same for every larger K.

Both hand out tensors of shape (B, S, *tail): B sentences, S samples each. `accepted` draws by
rejection (a variable number of proposals per sample, e.g. the vMF posterior's Wood sampler):
StreamNoise proposes for every pending sample at once, round after round; SeededNoise runs the loop
per (sentence, block) generator, so what a sentence gets still depends on nothing else.
"""

import numpy as np
import torch

from sentvae.errors import SentvaeError

BLOCK = 16                      # samples drawn per (sentence, block) generator
MAX_ROUNDS = 1000               # rejection rounds before a sampler is declared broken


def generator_seed(seed: int, sentence: int, block: int) -> int:
    """The seed of sentence `sentence`'s generator for samples block*BLOCK.. (under `seed`).

    torch's CPU generator keeps a seed's low 32 bits only, so what tells streams apart is this value
    mod 2**32: (seed * 1_000_003 * 100_003 + sentence * 100_003 + block) mod 2**32. Under one seed,
    two (sentence, block) pairs share a stream only where 100_003 * (i - i') = b' - b (mod 2**32):
    for blocks under 32 (K <= 512) no two sentences closer than 92,596,717 do, for blocks under
    3,125 (K <= 50,000) none closer than 558,329 (tests/test_latents.py computes both)."""
    return ((seed * 1_000_003 + sentence) * 100_003 + block) % (2 ** 63)


def _gave_up(rounds: int) -> SentvaeError:
    return SentvaeError(f"rejection sampling: samples still pending after {rounds} rounds of proposals "
                        "(an acceptance rate near 0: a bug, or a parameter far outside its range)", 1)


class StreamNoise:
    """Base noise for B sentences x S samples from one generator (None: the device's default).
    A draw is made in the dtype the posterior asks for (bf16 under autocast), else `dtype`."""

    def __init__(self, batch: int, samples: int, device="cpu", dtype=torch.float32, generator=None):
        self.batch, self.samples = batch, samples
        self.device, self.dtype, self.generator = torch.device(device), dtype, generator

    def normal(self, *tail: int, dtype=None) -> torch.Tensor:
        return torch.randn((self.batch, self.samples, *tail), device=self.device, dtype=dtype or self.dtype,
                           generator=self.generator)

    def uniform(self, *tail: int, dtype=None) -> torch.Tensor:
        return torch.rand((self.batch, self.samples, *tail), device=self.device, dtype=dtype or self.dtype,
                          generator=self.generator)

    def accepted(self, propose, width: int) -> torch.Tensor:
        """(B, S) float64 draws by rejection. propose(g (n, width) standard normals, u (n,) uniforms,
        float64) -> (values (n,), accepted (n,) bool); every sample is its own first accepted proposal.
        Each round proposes once for every sample still pending, all at once."""
        n = self.batch * self.samples
        out = torch.empty(n, dtype=torch.float64, device=self.device)
        todo = torch.arange(n, device=self.device)
        for _ in range(MAX_ROUNDS):
            k = todo.numel()
            g = torch.randn((k, width), device=self.device, dtype=torch.float64, generator=self.generator)
            u = torch.rand(k, device=self.device, dtype=torch.float64, generator=self.generator)
            values, ok = propose(g, u)
            out[todo[ok]] = values[ok]
            todo = todo[~ok]
            if todo.numel() == 0:
                return out.view(self.batch, self.samples)
        raise _gave_up(MAX_ROUNDS)


class SeededNoise:
    """Samples start..start+count of each sentence in `sentences` (their indices in the corpus),
    each (sentence, block) drawn from its own CPU generator, then moved to `device`.

    Successive calls (normal, then uniform, ...) continue each generator's stream, so a posterior
    that needs several kinds of noise draws them all reproducibly."""

    def __init__(self, seed: int, sentences, start: int, count: int, device="cpu", dtype=torch.float32):
        self.seed, self.sentences = seed, np.asarray(sentences)
        self.start, self.count = start, count
        self.batch, self.samples = len(self.sentences), count
        self.device, self.dtype = torch.device(device), dtype
        self.first = start // BLOCK
        self.blocks = (start + count - 1) // BLOCK - self.first + 1
        self._gens = None

    def _generators(self) -> list[list[torch.Generator]]:
        if self._gens is None:
            self._gens = []
            for i in self.sentences.tolist():
                row = []
                for b in range(self.first, self.first + self.blocks):
                    gen = torch.Generator()
                    gen.manual_seed(generator_seed(self.seed, i, b))
                    row.append(gen)
                self._gens.append(row)
        return self._gens

    def _draw(self, fn, tail: tuple, dtype=None) -> torch.Tensor:
        out = torch.empty(self.batch, self.blocks * BLOCK, *tail)
        for r, row in enumerate(self._generators()):
            for j, gen in enumerate(row):
                out[r, j * BLOCK:(j + 1) * BLOCK] = fn((BLOCK, *tail), generator=gen)
        off = self.start - self.first * BLOCK
        return out[:, off:off + self.count].to(self.device, dtype or self.dtype)

    def normal(self, *tail: int, dtype=None) -> torch.Tensor:
        return self._draw(torch.randn, tail, dtype)

    def uniform(self, *tail: int, dtype=None) -> torch.Tensor:
        return self._draw(torch.rand, tail, dtype)

    def accepted(self, propose, width: int) -> torch.Tensor:
        """(B, count) float64 draws by rejection (propose: as StreamNoise.accepted): each (sentence,
        block) generator proposes BLOCK at a time until BLOCK are accepted, in order; so a block's
        draws, and everything its generator gives after them, depend on that generator alone."""
        out = torch.empty(self.batch, self.blocks * BLOCK, dtype=torch.float64)
        for r, row in enumerate(self._generators()):
            for j, gen in enumerate(row):
                got, have = [], 0
                for _ in range(MAX_ROUNDS):
                    g = torch.randn((BLOCK, width), generator=gen, dtype=torch.float64)
                    u = torch.rand(BLOCK, generator=gen, dtype=torch.float64)
                    values, ok = propose(g, u)
                    got.append(values[ok])
                    have += int(ok.sum())
                    if have >= BLOCK:
                        break
                else:
                    raise _gave_up(MAX_ROUNDS)
                out[r, j * BLOCK:(j + 1) * BLOCK] = torch.cat(got)[:BLOCK]
        off = self.start - self.first * BLOCK
        return out[:, off:off + self.count].to(self.device)
