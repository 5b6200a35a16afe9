"""Data-parallel training under torchrun: 2 processes, gloo backend, CPU."""

import os
import subprocess
import sys

import torch

from sentvae.checkpoint import load_model
from conftest import ROOT

# Runs `sentvae train` and afterwards saves this rank's weights, so the test can compare ranks.
RANK_DUMP = """
import os, sys, torch
import sentvae.trainer as T
real = T.train
def train(*a, **k):
    result = real(*a, **k)
    out = a[5] if len(a) > 5 else k["out_dir"]
    torch.save(result.model.state_dict(), os.path.join(str(out), "rank%s.pt" % os.environ["RANK"]))
    return result
T.train = train
from sentvae.cli import main
sys.argv = ["sentvae"] + sys.argv[1:]
main()
"""


def test_two_process_gloo_training_keeps_ranks_identical(tmp_path, corpus_dir):
    script = tmp_path / "rank_dump.py"
    script.write_text(RANK_DUMP)
    ck = tmp_path / "ck"
    env = {**os.environ, "OMP_NUM_THREADS": "1", "MASTER_ADDR": "127.0.0.1", "GLOO_SOCKET_IFNAME": "lo"}
    r = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
                        str(script), "train", "--data", str(corpus_dir / "train.txt"),
                        "--valid", str(corpus_dir / "valid.txt"), "--out", str(ck), "--model-type", "word", "--device", "cpu",
                        "--emb-dim", "32", "--hidden", "32", "--latent", "8", "--max-tokens", "400",
                        "--max-steps", "8", "--eval-every", "4", "--log-every", "2",
                        "--pretrain-steps", "4",    # a decoder reset mid-run must stay in sync
                        "--aggressive"],            # so must inner loops and the MI decision
                       cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr[-2000:]
    w0, w1 = torch.load(ck / "rank0.pt"), torch.load(ck / "rank1.pt")
    assert w0.keys() == w1.keys()
    for k in w0:
        assert torch.equal(w0[k], w1[k]), k            # gradients were all-reduced every step
    model, tok, ckpt = load_model(ck / "last.pt")       # rank 0's checkpoint loads in one process
    assert ckpt["info"]["processes"] == 2 and ckpt["info"]["step"] == 8
    for k, v in model.state_dict().items():
        assert torch.equal(v, w0[k]), k
    assert r.stderr.count("valid  -ELBO") == 2           # only rank 0 reports (steps 4 and 8)


def test_shards_are_disjoint_and_equal(tok, corpora, tmp_path):
    """Each rank takes every world-th batch of the same epoch: disjoint, equally many, and
    together all but the remainder."""
    from sentvae.config import ModelConfig
    from sentvae.trainer import Trainer
    from conftest import TINY_MODEL, tiny_train_config
    t = Trainer(ModelConfig(vocab_size=tok.vocab_size, **TINY_MODEL), tiny_train_config(max_tokens=200),
                tok, *corpora, tmp_path)
    everything = t.epoch_batches(3)
    shards = []
    for rank in range(3):
        t.rank, t.world = rank, 3
        shards.append(t.epoch_batches(3))
    assert len({len(s) for s in shards}) == 1 and len(shards[0]) == len(everything) // 3
    seen = [tuple(b) for s in shards for b in s]
    assert len(seen) == len(set(seen)) == 3 * (len(everything) // 3)           # no batch twice
    sentences = [i for s in shards for b in s for i in b.tolist()]
    assert len(sentences) == len(set(sentences))                               # no sentence twice
    assert set(seen) <= {tuple(b) for b in everything}


def test_two_processes_give_the_update_of_one_process_on_both_batches(tmp_path, corpus_dir):
    """One DDP step on two shards = one single-process step whose gradient is the mean of the
    two batches' gradients (what DDP promises: the loss of the combined batch, each shard's
    mean weighted equally). A deterministic model (LM baseline, no dropout) makes it exact."""
    import numpy as np
    from sentvae.checkpoint import load_checkpoint
    from sentvae.config import ModelConfig, TrainConfig
    from sentvae.corpus import collate, load_corpus, make_batches
    from sentvae.model import build_model
    from sentvae.tokenizer import Tokenizer
    ck = tmp_path / "ck"
    env = {**os.environ, "OMP_NUM_THREADS": "1", "MASTER_ADDR": "127.0.0.1", "GLOO_SOCKET_IFNAME": "lo"}
    r = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
                        "-m", "sentvae", "train", "--data", str(corpus_dir / "train.txt"),
                        "--valid", str(corpus_dir / "valid.txt"), "--out", str(ck), "--model-type", "word", "--device", "cpu",
                        "--emb-dim", "16", "--hidden", "16", "--latent", "4", "--max-tokens", "300",
                        "--no-latent", "--dropout", "0", "--word-dropout", "0", "--lr", "0.01",
                        "--max-steps", "1", "--eval-every", "1", "-q"],
                       cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr[-2000:]
    ckpt = load_checkpoint(ck / "last.pt")
    tok = Tokenizer(ckpt["tokenizer"])
    mcfg = ModelConfig.from_dict(ckpt["model_config"])
    cfg = TrainConfig.from_dict(ckpt["train_config"])
    data = load_corpus([str(corpus_dir / "train.txt")], tok, cfg.max_len)
    torch.manual_seed(cfg.seed)
    model = build_model(mcfg)
    opt = torch.optim.AdamW(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    b0, b1 = make_batches(data.lengths, cfg.max_tokens, cfg.seed, 0)[:2]    # rank 0's and rank 1's first
    losses = []
    for b in (b0, b1):
        losses.append(-model(collate(data, b)).ll.mean())
    opt.zero_grad()
    ((losses[0] + losses[1]) / 2).backward()
    torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.grad_clip)
    opt.step()
    for k, v in model.state_dict().items():
        assert torch.allclose(v, ckpt["model"][k], atol=1e-6), k
    # and it is not what one shard alone would give
    assert not np.isclose(float(losses[0].detach()), float(losses[1].detach()))


def test_more_processes_than_gpus_is_one_clear_error_on_every_rank(monkeypatch):
    """torchrun --nproc_per_node 2 on a one-GPU machine: each rank says why, before joining a
    process group (rank 0 would otherwise wait there for a peer that cannot start)."""
    import pytest
    from sentvae import distributed
    from sentvae.errors import SentvaeError
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 1)
    monkeypatch.setattr(torch.distributed, "init_process_group",
                        lambda **kw: pytest.fail("joined a process group"))
    for rank in ("0", "1"):
        monkeypatch.setenv("WORLD_SIZE", "2")
        monkeypatch.setenv("LOCAL_WORLD_SIZE", "2")
        monkeypatch.setenv("LOCAL_RANK", rank)
        with pytest.raises(SentvaeError, match="--nproc_per_node 2: .* 1 CUDA device.*--device cpu"):
            distributed.setup(torch.device("cuda"))
