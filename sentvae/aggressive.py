"""Aggressive inference-network training (He et al. 2019, "Lagging Inference Networks").

While the phase lasts, each training step first updates only the encoder (the inference
network) on fresh random batches until its loss stops falling — compared block by block,
15 batches to a block, 100 batches at most — and then updates only the decoder, once, on
the step's own batch. The phase ends after the first epoch whose validation mutual
information I(x; z) is below the best seen; training then goes on as usual.

The embedding, shared by encoder and decoder here, counts as the decoder's: the inner
loop moves only what infers z.
"""

import math

import numpy as np

from sentvae import distributed as dist

BLOCK = 15
MAX_INNER = 100


class InnerLoopRule:
    """When to stop the encoder's inner loop: after a block of BLOCK losses whose sum is not
    below the previous block's, or after MAX_INNER updates. Under DDP the block sums are
    averaged over ranks, so every rank stops at the same update."""

    def __init__(self, block: int = BLOCK, max_steps: int = MAX_INNER):
        self.block, self.max_steps = block, max_steps
        self.steps, self.prev, self.cur = 0, math.inf, 0.0

    def update(self, loss: float, device="cpu") -> bool:
        """Record one inner update's loss; True when the loop should stop."""
        self.steps += 1
        self.cur += float(loss)
        if self.steps >= self.max_steps:
            return True
        if self.steps % self.block == 0:
            cur = dist.mean_over_ranks({"loss": self.cur}, device)["loss"]
            if cur >= self.prev:
                return True
            self.prev, self.cur = cur, 0.0
        return False


def split_parameters(model) -> tuple[list, list]:
    """(encoder side: encoder + posterior head (+ a labelled model's q(c|x)), decoder side: everything else)."""
    classifier = model.classifier.parameters() if model.classifier is not None else ()
    enc = [*model.encoder.parameters(), *model.to_posterior.parameters(), *classifier]
    ids = {id(p) for p in enc}
    return enc, [p for p in model.parameters() if id(p) not in ids]


def inner_loop(step_fn, batches: list, seed: int, step: int, device) -> int:
    """Run encoder-only updates on random batches of this epoch's shard; -> how many.

    step_fn(batch indices) does one encoder-only update and returns its loss. The batches are
    drawn by a generator seeded with (seed, step): a resumed run draws the same ones."""
    rng = np.random.default_rng([seed, step, 17])
    rule = InnerLoopRule()
    while not rule.update(step_fn(batches[int(rng.integers(len(batches)))]), device):
        pass
    return rule.steps
