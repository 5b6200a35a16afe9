"""The training loop: step-driven, validation every N steps, atomic checkpoints, exact resume.

`train(...)` runs a `Trainer`, whose parts read and test alone: `step` (one update, with the
aggressive inner loop and the pretraining reset when due), `log_train` (figures every
--log-every steps), `validate_and_save` (validation, best.pt, the learning-rate schedule's
decision, last.pt), `check_aggressive_phase` and `finished` (the stop conditions).

Data order is a pure function of (seed, epoch), so resuming needs only the position
(epoch, batch) plus the optimizer, schedule and RNG states, all of which last.pt holds.
Figures are kept as tensors and read back only every `log_every` steps: no host sync per step.
"""

import functools
import math
import time
from contextlib import nullcontext
from pathlib import Path

import torch

from sentvae import aggressive, schedule
from sentvae import distributed as dist
from sentvae.checkpoint import load_checkpoint, save_checkpoint
from sentvae.config import ModelConfig, TrainConfig
from sentvae.corpus import Corpus, collate, make_batches, padding_fraction
from sentvae.errors import SentvaeError, TrainingInterrupted
from sentvae.evaluate import evaluate, evaluate_elbo
from sentvae.model import build_model
from sentvae.objective import build_objective
from sentvae.resume import contents as checkpoint_contents, restore as restore_run, train_state
from sentvae.rundir import RunDir
from sentvae.step import build_optimizer, schedule_weight, total_steps, train_step
from sentvae.tokenizer import Tokenizer
from sentvae.trainstate import Meter, Position, StopRequested, TrainResult, graceful_stop


def train(model_cfg: ModelConfig, cfg: TrainConfig, tokenizer: Tokenizer, train_data: Corpus,
          valid_data: Corpus, out_dir, device="cpu", resume: bool = False, on_event=None,
          overwrite: bool = False, init_weights: dict | None = None) -> TrainResult:
    """Train into out_dir (locked while it runs); -> TrainResult. on_event(kind, info) sees
    "note", "start", "step", "log", "valid" and "end" (rank 0 only). init_weights: the state dict
    cfg.init_decoder or cfg.init_from names, if the caller has read it already (else it is read here)."""
    return Trainer(model_cfg, cfg, tokenizer, train_data, valid_data, out_dir, device,
                   resume, on_event, overwrite, init_weights).run()


def _ignore(kind, info):
    pass


def refuse_contradictions(no_latent: bool, cfg: TrainConfig) -> None:
    """Training options that a --no-latent model (an LM: no encoder, no z, no KL) cannot use,
    refused by name before anything is written (--aggressive crashed on the missing encoder)."""
    if not no_latent:
        return
    for given, flag, why in ((cfg.train_only == "encoder", "--train-only: encoder", "has no encoder to train"),
                             (cfg.aggressive, "--aggressive", "has no encoder to train aggressively"),
                             (cfg.pretrain_steps > 0, "--pretrain-steps", "has no autoencoder to pretrain (the "
                              "decoder reset would only discard what it learnt)"),
                             (cfg.bow_weight > 0, "--bow-weight", "has no z to predict the words from"),
                             (cfg.free_bits > 0, "--free-bits", "has no KL term to floor")):
        if given:
            raise SentvaeError(f"{flag}: a --no-latent model (an LM) {why}")


class Trainer:
    def __init__(self, model_cfg: ModelConfig, cfg: TrainConfig, tokenizer: Tokenizer, train_data: Corpus,
                 valid_data: Corpus, out_dir, device="cpu", resume: bool = False, on_event=None,
                 overwrite: bool = False, init_weights: dict | None = None):
        self.model_cfg, self.cfg, self.tokenizer = model_cfg, cfg, tokenizer
        self.train_data, self.valid_data = train_data, valid_data
        self.out = Path(out_dir)
        self.device = device = torch.device(device)
        self.resume, self.overwrite = resume, overwrite
        self.rank, self.world = dist.rank_world()
        self.lead = self.rank == 0                     # only rank 0 validates, writes and reports
        self.emit = (on_event if self.lead else None) or _ignore
        if cfg.precision == "fp16" and device.type != "cuda":
            raise SentvaeError("--precision fp16: needs a CUDA device; use bf16 on CPU")
        torch.manual_seed(cfg.seed)                    # the same initial weights on every rank
        self.raw = build_model(model_cfg)
        if not resume:                                 # a resumed run has its own weights in last.pt
            if cfg.init_decoder:
                self.raw.start_decoder_from(init_weights or load_checkpoint(cfg.init_decoder)["model"])
            elif cfg.init_from:
                self.raw.start_from(init_weights or load_checkpoint(cfg.init_from)["model"])
        self.raw = self.raw.to(device)
        self.model = self.raw
        if self.world > 1:
            self.model = torch.nn.parallel.DistributedDataParallel(
                self.raw, device_ids=[device.index] if device.type == "cuda" else None)
        self.opt = build_optimizer(self.raw.parameters(), cfg)
        self.scaler = torch.amp.GradScaler("cuda") if cfg.precision == "fp16" else None
        self.pos = Position()
        self.objective = build_objective(cfg, model_cfg)
        self.objective.check(self.raw.to_posterior.family, type(self.raw.prior), self.raw.classifier is not None)
        # --max-tokens counts every copy of a sentence that the objective decodes
        self.batch_tokens = cfg.max_tokens // self.objective.copies
        self.n_batches = len(self.epoch_batches(0))    # the same every epoch
        if self.n_batches == 0:
            raise SentvaeError(f"--data: too little data for {self.world} processes at --max-tokens {cfg.max_tokens}")
        self.total = total_steps(cfg, self.n_batches)
        if cfg.kl_anneal == "cyclical" and self.total is None:
            raise SentvaeError("--kl-anneal cyclical: needs --epochs or --max-steps to place its cycles")
        if cfg.lr_schedule == "cosine" and self.total is None:
            raise SentvaeError("--lr-schedule cosine: needs --epochs or --max-steps to know where it ends")
        self.settled_from = schedule.settled_from(cfg, self.total)
        refuse_contradictions(model_cfg.no_latent, cfg)
        needs_split = cfg.aggressive or cfg.train_only == "encoder"        # an LM has no encoder to split off
        self.enc_dec = aggressive.split_parameters(self.raw) if needs_split else None   # once, not per step
        # --train-only encoder: the decoder side's gradients are dropped after backward, not switched off
        # with requires_grad: under bf16 autocast a decoder LSTM with frozen weights takes a path ~3x
        # slower per step (bench/encoder_only_speed.py)
        self.only = self.enc_dec[0] if cfg.train_only == "encoder" else None
        self.eval_tokens = max(cfg.max_tokens, 4000)   # validation needs no gradients: bigger batches
        self.result = TrainResult(self.pos, model=self.raw)
        self.run_dir = None
        self.saved_step = None                         # the step of the last.pt this run can fall back on
        self.meter = Meter(device)
        self.last_validated = -1
        self.run_start = time.perf_counter()
        self.elapsed0 = 0.0

    # --- the run
    def run(self) -> TrainResult:
        with RunDir(self.out, self.resume, self.overwrite) if self.lead else nullcontext() as run_dir:
            self.run_dir = run_dir
            if self.lead and run_dir.recovered:
                self.emit("note", {"message": run_dir.recovered})
            reopened = ""
            if self.resume:
                self.restore()
                reopened = self.reopen_schedule()
            if self.world > 1:
                # noise differs between ranks (else word dropout would repeat itself across shards)
                torch.manual_seed(self.cfg.seed * 100_003 + self.pos.step * 1009 + self.rank)
            if self.lead:
                # a new run writes its tokenizer here, having set aside the run files there: they
                # come back if it fails before its first last.pt (rundir.py)
                run_dir.start(self.tokenizer)
            self.emit("start", {
                "steps": self.total, "step": self.pos.step, "batches_per_epoch": self.n_batches,
                "padding": padding_fraction(make_batches(self.train_data.lengths, self.batch_tokens,
                                                         self.cfg.seed, 0), self.train_data.lengths),
                "sentences": len(self.train_data), "parameters": self.raw.num_parameters(),
                "trainable": sum(p.numel() for p in (self.only or self.raw.parameters())),
                "reopened": reopened, "lr": schedule.learning_rate(self.pos.step, self.cfg, self.total, self.pos.lr_scale),
                "device": str(self.device) + (f" x {self.world} processes" if self.world > 1 else "")})
            self.loop()
        return self.result

    def restore(self) -> None:
        """Continue exactly from last.pt: weights, optimizer, position, schedule, RNG."""
        self.pos, figures = restore_run(self.out / "last.pt", self.raw, self.opt, self.cfg,
                                           len(self.train_data), self.device)
        self.result.position = self.pos
        self.saved_step = self.pos.step
        if figures:                                 # saved by a validation: a run with nothing
            self.last_validated = self.pos.step     # left to do need not validate again
            self.result.last = figures
        if self.lead and (self.out / "best.pt").exists():
            self.result.best = load_checkpoint(self.out / "best.pt").get("info", {}).get("valid", {})

    def reopen_schedule(self) -> str:
        """--resume of a run its schedule stopped, with options that would have let it go on
        there (e.g. a raised --max-decays): take their decision now; -> why it stopped, or ""."""
        was = self.pos.stop
        decision = schedule.reopen(self.pos, self.cfg)
        if not was or decision == schedule.STOP:
            return ""
        if decision == schedule.DECAY and self.cfg.decay_restart:
            self.restart_from_best()
        return was

    def loop(self) -> None:
        self.model.train()
        self.meter = Meter(self.device)
        self.run_start, self.elapsed0 = time.perf_counter(), self.pos.elapsed
        self.result.stopped = self.finished()         # a resumed run may have nothing left to do
        with graceful_stop() as stop:
            try:
                while not self.result.stopped:
                    self.run_epoch(stop)
            except StopRequested:
                # stopped between two steps: weights, optimizer and position agree
                if self.meter.steps:
                    self.log_train()
                if self.lead:
                    self.save_last(self.result.last)
                raise TrainingInterrupted(self.pos.step, self.out / "last.pt") from None
        if self.meter.steps:
            self.log_train()
        if self.last_validated != self.pos.step:
            self.validate_and_save(regular=False)
        self.emit("end", {"stopped": self.result.stopped, "step": self.pos.step})

    def run_epoch(self, stop) -> None:
        pos, cfg = self.pos, self.cfg
        batches = self.epoch_batches(pos.epoch)
        while pos.batch < len(batches) and not self.result.stopped:
            if dist.any_rank(stop.requested, self.device):
                raise StopRequested
            self.step(batches)
            self.emit("step", {"step": pos.step})
            self.result.stopped = self.finished()
            if pos.step % cfg.log_every == 0:
                self.log_train()
            if cfg.aggressive_every and pos.step % cfg.aggressive_every == 0:
                self.check_aggressive_phase()          # before saving: a resume sees the decision
            if pos.step % cfg.eval_every == 0:
                self.validate_and_save()
                self.last_validated = pos.step
        if pos.batch >= len(batches):
            if not cfg.aggressive_every:
                self.check_aggressive_phase()
            pos.epoch += 1
            pos.batch = 0
            self.result.stopped = self.result.stopped or self.finished()

    def epoch_batches(self, epoch: int) -> list:
        # every rank builds the same list and takes every world-th batch of an equal share
        b = make_batches(self.train_data.lengths, self.batch_tokens, self.cfg.seed, epoch)
        return b[self.rank:len(b) - len(b) % self.world:self.world]

    # --- one step
    def step(self, batches: list) -> None:
        """One update on the next batch (after the aggressive inner loop, while it lasts)."""
        pos, cfg = self.pos, self.cfg
        idx = batches[pos.batch]
        batch = collate(self.train_data, idx)
        if self.device.type == "cuda":                 # pinned pages: an asynchronous copy
            batch = batch.pin_memory()
        batch = batch.to(self.device, non_blocking=True)
        if cfg.pretrain_steps and pos.step == cfg.pretrain_steps:
            self.reset_decoder()
        w = schedule_weight(pos.step, cfg, self.total)
        lr = schedule.learning_rate(pos.step, cfg, self.total, pos.lr_scale)
        for g in self.opt.param_groups:
            g["lr"] = lr
        inner = 0
        if cfg.aggressive and not pos.aggressive_done:
            enc, dec = self.enc_dec
            update = functools.partial(self.encoder_update, weight=w, params=enc)
            inner = aggressive.inner_loop(update, batches, cfg.seed, pos.step, self.device)
            figs = train_step(self.model, self.opt, batch, w, cfg, self.scaler, dec, pos.step)
        else:
            figs = train_step(self.model, self.opt, batch, w, cfg, self.scaler, self.only, pos.step)
        self.meter.add(figs, int(self.train_data.lengths[idx].sum()) + len(idx), inner)  # host side: no sync
        pos.step += 1
        pos.batch += 1
        pos.elapsed = self.elapsed0 + time.perf_counter() - self.run_start

    def encoder_update(self, idx, weight: float, params: list):
        """Aggressive training's inner step: the encoder alone, on batch idx; -> its loss."""
        return train_step(self.model, self.opt, collate(self.train_data, idx).to(self.device), weight,
                          self.cfg, self.scaler, params, self.pos.step)["loss"]

    def reset_decoder(self) -> None:
        """Li et al. 2019: the encoder is now a good autoencoder's; start the decoder afresh (and
        forget its optimizer moments) so it must use z. From a fixed seed: every DDP rank must
        draw the same new decoder."""
        devices = [self.device] if self.device.type == "cuda" else []
        with torch.random.fork_rng(devices=devices):
            torch.manual_seed(self.cfg.seed + self.cfg.pretrain_steps)
            for p in self.raw.reset_decoder():
                self.opt.state.pop(p, None)

    # --- logging
    def log(self, row: dict) -> None:
        if self.run_dir is not None:
            self.run_dir.log(row)

    def log_train(self) -> None:
        pos, cfg = self.pos, self.cfg
        means, steps, tokens, inner, seconds = self.meter.take()
        figs = dist.mean_over_ranks(means, self.device)
        if not all(math.isfinite(v) for v in figs.values()):
            # figures are read every --log-every steps: it went non-finite at this step or before
            raise SentvaeError(f"non-finite loss by step {pos.step} (too large a --lr, --beta, "
                               f"--free-bits or --weight-decay? bad data? --detect-anomaly finds the "
                               f"operation); {self.kept()}", 1)
        if cfg.aggressive:
            figs["inner_steps"] = inner / max(steps, 1)
        row = {"split": "train", "step": pos.step, "epoch": pos.epoch, **figs,
               # an LM has no KL term: its weight is 0, not the (unused) annealing schedule's
               "kl_weight": 0.0 if self.model_cfg.no_latent
               else cfg.beta * schedule_weight(max(pos.step - 1, 0), cfg, self.total),
               "lr": self.opt.param_groups[0]["lr"],
               "tokens_per_s": self.world * tokens / max(seconds, 1e-9)}
        self.log(row)
        self.emit("log", row)

    # --- validation, the schedule, checkpoints
    def settled(self) -> bool:
        """The KL weight is final and the aggressive phase over: -ELBO should now only fall."""
        return self.pos.step >= self.settled_from and (not self.cfg.aggressive or self.pos.aggressive_done)

    def payload(self, with_state: bool, figures: dict) -> dict:
        p = checkpoint_contents(self.raw, self.model_cfg, self.cfg, self.tokenizer, self.pos, figures,
                            len(self.train_data), self.world)
        if with_state:
            p["train_state"] = train_state(self.opt, self.pos, len(self.train_data), self.device)
        return p

    def validate_and_save(self, regular: bool = True) -> None:
        """Validate, update best.pt, let the schedule decide, save last.pt. Only regular
        validations (every --eval-every steps) feed the schedule: the extra one made when a
        --time-budget ends a run must not, or a resumed run would decay where one run did not."""
        pos, cfg = self.pos, self.cfg
        decision, figures, improved = schedule.CONTINUE, {}, False
        if self.lead:
            figures = evaluate_elbo(self.raw, self.valid_data, max_tokens=self.eval_tokens,
                                    device=self.device, seed=cfg.seed, svi_steps=cfg.svi_steps, svi_lr=cfg.svi_lr)
            if not math.isfinite(figures["elbo"]):
                raise SentvaeError(f"non-finite validation ELBO at step {pos.step}; {self.kept()}", 1)
            figures = {"step": pos.step, **figures, "lr": self.opt.param_groups[0]["lr"]}
            improved = figures["elbo"] < pos.best
            if improved:
                pos.best = figures["elbo"]
                self.result.best = figures
            if regular:
                # the plateau is measured from the best validation made with the final objective:
                # an earlier one (a KL weight still rising, free bits not yet filled -- a VAE
                # started from an LM reads its best -ELBO at its first validation, KL near 0)
                # is not a level the settled run can be expected to beat
                settled = self.settled()
                gain = schedule.gains(figures["elbo"], pos, cfg, settled)
                decision = schedule.on_validation(gain, pos, cfg, settled)
            if decision == schedule.STOP:
                pos.stop = schedule.stop_reason(cfg, pos)
            if improved:      # best.pt first: a decay right after restarts from it
                save_checkpoint(self.out / "best.pt", self.payload(False, figures))
        decision = self.share_decision(decision)
        if decision == schedule.DECAY and cfg.decay_restart:
            self.restart_from_best()
        if decision == schedule.STOP:
            pos.stop = pos.stop or "early stop"
            self.result.stopped = pos.stop
        if self.lead:
            self.save_last(figures)
            self.result.last = figures
            row = {**figures, "best": improved, "decision": decision, "lr_scale": pos.lr_scale}
            self.log({"split": "valid", **row})
            self.emit("valid", row)
        dist.barrier()

    def save_last(self, figures: dict) -> None:
        """last.pt, resumable; the first one of a new run commits it (the run it replaces goes)."""
        save_checkpoint(self.out / "last.pt", self.payload(True, figures))
        self.saved_step = self.pos.step
        if self.run_dir is not None:
            self.run_dir.committed()

    def kept(self) -> str:
        """What a failure now leaves behind, for its message: only what is true."""
        if not self.lead:
            return "rank 0 keeps the checkpoints"
        if self.run_dir is not None and self.run_dir.pending:
            return self.run_dir.as_found()       # rolled back as the error leaves the run folder
        if self.saved_step is not None:
            return f"kept the last good checkpoint {self.out / 'last.pt'} (step {self.saved_step})"
        return "nothing was saved"

    def share_decision(self, decision: str) -> str:
        """Rank 0 alone validates: every rank takes its decision and schedule state."""
        pos = self.pos
        names = (schedule.CONTINUE, schedule.DECAY, schedule.STOP)
        code, pos.lr_scale, decays, bad = dist.broadcast_floats(
            [names.index(decision), pos.lr_scale, pos.decays, pos.bad], self.device)
        pos.decays, pos.bad = int(decays), int(bad)
        return names[int(code)]

    def restart_from_best(self) -> None:
        """Plateau decay with --decay-restart: back to the best weights, fresh optimizer state."""
        if self.lead:
            self.raw.load_state_dict(load_checkpoint(self.out / "best.pt")["model"])
        dist.broadcast_module(self.raw)
        self.opt.state.clear()

    def check_aggressive_phase(self) -> None:
        """He et al. 2019: the aggressive phase ends once validation MI falls below its best."""
        pos, cfg = self.pos, self.cfg
        if not cfg.aggressive or pos.aggressive_done:
            return
        # same weights and data on every rank: the same decision everywhere
        mi = evaluate(self.raw, self.valid_data, iw_samples=1, max_tokens=self.eval_tokens,
                      device=self.device, seed=cfg.seed).mi
        pos.aggressive_done = mi < pos.best_mi
        pos.best_mi = max(pos.best_mi, mi)
        self.log({"split": "aggressive", "epoch": pos.epoch, "step": pos.step, "mi": mi,
                  "aggressive": not pos.aggressive_done})

    def finished(self) -> str:
        """Why the run should stop now, or "" to go on."""
        pos, cfg = self.pos, self.cfg
        if pos.stop:
            return pos.stop
        if self.total is not None and pos.step >= self.total:
            return "max steps" if cfg.max_steps and pos.step >= cfg.max_steps else "epochs"
        # the clock may differ between ranks: stop when any rank's budget is spent
        if cfg.time_budget and dist.any_rank(time.perf_counter() - self.run_start >= cfg.time_budget, self.device):
            return "time budget"
        return ""

