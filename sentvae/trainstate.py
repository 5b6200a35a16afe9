"""What a training run carries from step to step: its position (saved in last.pt), its result,
the figures summed between two logs, and the SIGINT/SIGTERM stop request."""

import math
import signal
import threading
import time
from contextlib import contextmanager
from dataclasses import dataclass, field

import torch


@dataclass
class Position:
    step: int = 0          # optimizer updates done
    epoch: int = 0
    batch: int = 0         # next batch index within the epoch
    best: float = math.inf # best validation -ELBO per sentence
    elapsed: float = 0.0   # training seconds over all runs
    aggressive_done: bool = False   # He et al. 2019: the aggressive phase has ended
    best_mi: float = -math.inf      # best validation MI seen while aggressive
    lr_scale: float = 1.0           # plateau schedule: the product of the decays so far
    decays: int = 0                 # plateau schedule: decays so far
    bad: int = 0                    # validations since the last improvement (after settling)
    sched_best: float = math.inf    # best -ELBO of the regular validations (the schedule's)
    stop: str = ""                  # why an early stop ended the run ("" while it goes on)


@dataclass
class TrainResult:
    position: Position
    last: dict = field(default_factory=dict)    # final validation figures
    best: dict = field(default_factory=dict)
    stopped: str = ""                           # why training ended
    model: object = None                        # the trained SentenceVAE (this process's copy)


class Meter:
    """Training figures summed since the last log, kept on the device (read at log time only)."""

    KEYS = ("loss", "elbo", "rec", "kl")
    LABELS = ("kl_labels", "class_ce")      # a labelled model's (sentvae/semisup.py)

    def __init__(self, device):
        self.sums = {k: torch.zeros((), device=device) for k in self.KEYS}
        self.device = device
        self.steps = self.tokens = self.inner = 0
        self.since = time.perf_counter()

    def add(self, figures: dict, tokens: int, inner: int = 0) -> None:
        for k in self.KEYS:
            self.sums[k] += figures[k]
        for k in self.LABELS:
            if k in figures:
                self.sums[k] = self.sums.get(k, torch.zeros((), device=self.device)) + figures[k]
        self.steps += 1
        self.tokens += tokens
        self.inner += inner

    def take(self) -> tuple[dict, int, int, int, float]:
        """-> (mean figures as floats, steps, tokens, inner updates, seconds) since the last take;
        then starts afresh."""
        means = {k: float(v) / max(self.steps, 1) for k, v in self.sums.items()}
        now = time.perf_counter()
        out = (means, self.steps, self.tokens, self.inner, now - self.since)
        for v in self.sums.values():
            v.zero_()
        self.steps = self.tokens = self.inner = 0
        self.since = now
        return out


class StopRequested(Exception):
    pass


class StopFlag:
    """SIGINT/SIGTERM ask the loop to stop at the next step boundary, so that the saved
    state is consistent; a second Ctrl-C interrupts at once without saving (the weights
    may be half-updated then), leaving the previous last.pt as it was."""

    def __init__(self):
        self.requested = False

    def __call__(self, signum, frame):
        if self.requested and signum == signal.SIGINT:
            raise KeyboardInterrupt
        self.requested = True


@contextmanager
def graceful_stop():
    flag = StopFlag()
    if threading.current_thread() is not threading.main_thread():
        yield flag
        return
    old = {s: signal.signal(s, flag) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield flag
    finally:
        for s, h in old.items():
            signal.signal(s, h)
