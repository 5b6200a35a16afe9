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
import sentvae.train as T
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
                        "--valid", str(corpus_dir / "valid.txt"), "--out", str(ck), "--model-type", "word",
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
