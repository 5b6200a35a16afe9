"""Where a posterior's randomness comes from.

A posterior draws its samples as a function of base noise (standard normals, uniforms), and the
noise comes from one of two sources:

- `StreamNoise`: one generator (the default one of the device, or a given one). Training draws
  here: fast, and an exact resume restores it with the RNG state.
- `SeededNoise`: sentence i's samples from CPU generators seeded by (seed, i, block of BLOCK
  samples). Evaluation and codes draw here, so that a figure or a sentence's code depends neither
  on the batch it sits in, nor on how the K samples are chunked, nor on the device; and the first
  K samples are the same for every larger K.

Both hand out tensors of shape (B, S, *tail): B sentences, S samples each.
"""

import numpy as np
import torch

BLOCK = 16                      # samples drawn per (sentence, block) generator


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
                    gen.manual_seed(((self.seed * 1_000_003 + i) * 100_003 + b) % (2 ** 63))
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
