"""bench/ptb_table.py: the PTB results table (docs/results/ptb.md) pairs a VAE with its LM sentence
by sentence, also while only some parts of a FULL=1 evaluation have finished, and reads a row that
is no longer on this machine from what bench/ptb.sh kept of it (its per-sentence figures gzipped);
bench/ptb.sh finds a recipe under configs/experiments/ too, and keeps its figures compressed;
bench/gpu_rows.sh runs several rows at once on a lent GPU and brings back what each reached."""

import gzip
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

BENCH = Path(__file__).resolve().parent.parent / "bench"
sys.path.insert(0, str(BENCH))
import ptb_table  # noqa: E402

N = 53                      # test sentences (PTB's 3,761, made small)
LM, VAE = "transformer-lm-cosine", "transformer-vae-fb5-cosine14"


def lm_nll(i: int) -> float:
    return 100.0 + i        # a different figure for each test line, so a wrong match shows


def gap(i: int) -> float:
    return -0.5 + 0.01 * i  # the VAE's per-sentence difference from the LM, by test index


def write(run: Path, name: str, rows: list[dict], K: int, kl: float) -> None:
    run.mkdir(parents=True, exist_ok=True)
    (run / f"{name}.sentences.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    summary = {"iw_nll": sum(r["iw_nll"] for r in rows) / len(rows), "iw_nll_se": 0.01, "ppl": 100.0,
               "elbo": 105.0, "kl": kl, "mi": 5.0, "au": 32, "iw_samples": K}
    (run / f"{name}.json").write_text(json.dumps(summary))


def row(nll: float, index: int) -> dict:
    return {"index": index, "words": 20, "elbo": nll + 3, "iw_nll": nll, "ess": 20.0, "kl": 0.0}


@pytest.fixture
def runs(tmp_path, monkeypatch):
    runs, results = tmp_path / "runs", tmp_path / "results"
    monkeypatch.setattr(ptb_table, "RUNS", runs)
    monkeypatch.setattr(ptb_table, "RESULTS", results)
    lm = [row(lm_nll(i), i) for i in range(N)]
    write(runs / f"ptb-{LM}", "eval-test", lm, 1, 0.0)
    write(runs / f"ptb-{LM}", "eval-k500", lm[0::10], 1, 0.0)
    write(runs / f"ptb-{VAE}", "eval-test", [row(lm_nll(i) + 3, i) for i in range(N)], 1, 6.0)
    # part r: the test lines whose number % 10 == r (0-based index 10k + r - 1; part 0: 10k + 9)
    for r in (1, 3, 0):
        indices = [i for i in range(N) if (i + 1) % 10 == r]
        write(runs / f"ptb-{VAE}", f"eval-k500-full-part{r}",
              [row(lm_nll(i) + gap(i), k) for k, i in enumerate(indices)], 500, 6.0)
    return runs, results


def vae_cells(runs_dir) -> list[str]:
    name, key, arch, is_lm = next(r for r in ptb_table.ROWS if r[1] == VAE)
    return [c.strip() for c in ptb_table.row(name, key, arch, is_lm).split("|")]


def test_finished_parts_are_paired_with_the_lm_by_test_line(runs):
    cells = vae_cells(runs)
    indices = [i for i in range(N) if (i + 1) % 10 in (1, 3, 0)]
    assert cells[2].startswith(f"parts 0 1 3 only ({len(indices)} of {N} sentences): ")
    mean = sum(lm_nll(i) + gap(i) for i in indices) / len(indices)
    assert f": {mean:.2f} ± " in cells[2]
    expected = sum(gap(i) for i in indices) / len(indices)
    assert cells[3].startswith(f"{expected:+.2f} [")
    lo, hi = (float(x) for x in cells[3].split("[")[1].split("]")[0].split(","))
    assert lo < expected < hi and hi - lo < 0.2


def test_a_part_still_running_is_left_out(runs):
    (runs[0] / f"ptb-{VAE}" / "eval-k500-full-part3.json").unlink()   # its .json comes last
    assert vae_cells(runs)[2].startswith("parts 0 1 only (")


def test_a_row_gone_with_its_machine_is_read_from_what_was_kept(runs):
    live, kept = runs
    paired_live = vae_cells(runs)[3]
    (live / f"ptb-{LM}").rename(kept.mkdir() or kept / f"ptb-{LM}")
    for f in (kept / f"ptb-{LM}").glob("*.sentences.jsonl"):   # bench/results keeps them gzipped
        f.with_name(f.name + ".gz").write_bytes(gzip.compress(f.read_bytes()))
        f.unlink()
    assert paired_live != "-" and vae_cells(runs)[3] == paired_live   # still paired with the LM, from bench/results
    cells = [c.strip() for c in ptb_table.row(*next(r for r in ptb_table.ROWS if r[1] == LM)).split("|")]
    assert cells[2] == f"{sum(map(lm_nll, range(N))) / N:.2f} (exact) / 100.00"


def write_parts(run: Path, checkpoints: list[str]) -> None:
    """The ten parts of a K = 500 evaluation of the N test lines, part r naming checkpoints[r]."""
    import ptb_merge
    run.mkdir(parents=True, exist_ok=True)
    (run / "eval-test.json").write_text(json.dumps({"mi": 5.0, "au": 32, "latent": 32}))
    for r in range(ptb_merge.PARTS):
        rows = [row(lm_nll(i), k) for k, i in enumerate(ptb_merge.part_indices(r, N))]
        (run / f"eval-k500-full-part{r}.sentences.jsonl").write_text("".join(json.dumps(x) + "\n" for x in rows))
        (run / f"eval-k500-full-part{r}.json").write_text(
            json.dumps({"iw_samples": 500, "checkpoint": checkpoints[r]}))


def test_merged_parts_come_back_in_test_order_whatever_path_named_the_checkpoint(tmp_path):
    import ptb_merge
    run = tmp_path / "ptb-lstm-vae-fb7"
    # ptb.sh names it by its absolute path; a part run by hand in the run folder, relatively
    write_parts(run, ["best.pt"] + [str(run / "best.pt")] * 9)
    summary = ptb_merge.merge(run, "eval-k500-full", N)
    merged = [json.loads(x) for x in (run / "eval-k500-full.sentences.jsonl").read_text().splitlines()]
    assert [r["index"] for r in merged] == list(range(N))
    assert [r["iw_nll"] for r in merged] == [lm_nll(i) for i in range(N)]
    assert summary["iw_nll"] == pytest.approx(sum(map(lm_nll, range(N))) / N)
    assert summary["sentences"] == N and summary["checkpoint"] == "best.pt"


def test_parts_of_different_checkpoints_are_not_merged(tmp_path):
    import ptb_merge
    run = tmp_path / "ptb-lstm-vae-fb7"
    write_parts(run, [str(run / "best.pt")] * 9 + [str(run / "last.pt")])
    with pytest.raises(SystemExit, match="different checkpoints"):
        ptb_merge.merge(run, "eval-k500-full", N)
    assert not (run / "eval-k500-full.json").exists()


def test_pair_compares_any_two_rows_sentence_by_sentence(runs):
    runs_dir, _ = runs
    subset = list(range(0, N, 10))
    write(runs_dir / f"ptb-{VAE}", "eval-k500", [row(lm_nll(i) + gap(i), i) for i in subset], 500, 6.0)   # indexed as the LM's
    mean = sum(gap(i) for i in subset) / len(subset)
    assert ptb_table.pair(VAE, LM, "eval-k500").startswith(f"{VAE} - {LM}, eval-k500: {mean:+.2f} [")
    with pytest.raises(ValueError, match="eval-k500-full"):           # the LM has no K = 500 full-test file
        ptb_table.pair(VAE, LM, "eval-k500-full")


def test_the_training_column_says_how_long_and_on_what(runs):
    live, _ = runs
    (live / f"ptb-{VAE}" / "time.txt").write_text("7924 s training, 1 thread(s), 2 cores: Intel(R) Xeon(R) Gold\n")
    assert vae_cells(runs)[10] == "132 min, 1 thread of a 2-core Intel Xeon Gold"
    (live / f"ptb-{VAE}" / "time.txt").write_text("600 s training, 16 thread(s), 16 cores: AMD EPYC\n")
    assert vae_cells(runs)[10] == "10 min, 16 threads of a 16-core AMD EPYC"
    (live / f"ptb-{VAE}" / "time.txt").write_text("352 s training, 1 GPU: NVIDIA H200\n")   # bench/ptb.sh on a GPU
    assert vae_cells(runs)[10] == "5.9 min, one NVIDIA H200 GPU"


def test_a_row_kept_from_the_test_set_says_so_and_why(runs):
    """A row trained to the end but chosen against on validation is 'not evaluated' with its note,
    not 'unfinished'; one stopped part-way still says unfinished."""
    live, _ = runs
    key = "transformer-vae-fb3-wd"
    name, _, arch, is_lm = next(r for r in ptb_table.ROWS if r[1] == key)
    (live / f"ptb-{key}").mkdir()
    (live / f"ptb-{key}" / "note.txt").write_text("validation: +0.91 [+0.62, +1.20]\n")
    assert ptb_table.row(name, key, arch, is_lm).split("|")[2].strip() == "not evaluated (unfinished)"
    (live / f"ptb-{key}" / "time.txt").write_text("3743 s training, 1 thread(s), 2 cores: AMD EPYC\n")
    cells = [c.strip() for c in ptb_table.row(name, key, arch, is_lm).split("|")]
    assert cells[2] == "not evaluated" and "(**validation: +0.91 [+0.62, +1.20]**)" in cells[1]
    assert cells[10] == "62 min, 1 thread of a 2-core AMD EPYC"
    (live / f"ptb-{key}" / "note.txt").unlink()             # kept from another machine: time.txt alone
    cells = [c.strip() for c in ptb_table.row(name, key, arch, is_lm).split("|")]
    assert cells[2] == "not evaluated" and cells[10] == "62 min, 1 thread of a 2-core AMD EPYC"


STUB_SENTVAE = r"""#!/usr/bin/env bash
# a stand-in for `sentvae train` and `sentvae eval`, enough for bench/ptb.sh's bookkeeping
cmd=$1; shift
while [ $# -gt 0 ]; do
    case $1 in --out) out=$2; shift ;; --per-sentence) per=$2; shift ;; --data) data=$2; shift ;; --config) echo "config $2" >&2 ;; esac
    shift
done
case $cmd in
    train) touch "$out/last.pt" "$out/best.pt"; echo "done (converged) at step 3" ;;
    eval) awk '{printf "{\"index\": %d, \"iw_nll\": %d.5}\n", NR - 1, NR}' "$data" > "$per"; echo '{"iw_nll": 1.5}' ;;
esac
"""


def test_ptb_sh_finds_an_experiment_recipe_and_keeps_its_figures_gzipped(tmp_path):
    """A row whose recipe moved to configs/experiments/ still runs; what it keeps in
    bench/results/ptb-ROW/ is the per-sentence files gzipped (and read back as they were)."""
    (tmp_path / "configs" / "experiments").mkdir(parents=True)
    (tmp_path / "configs" / "experiments" / "ptb-old-row.toml").write_text('lr = 1e-3\n')
    (tmp_path / "ptb").mkdir()
    (tmp_path / "ptb" / "ptb.test.txt").write_text("".join(f"sentence {i}\n" for i in range(25)))
    stub = tmp_path / "sentvae"
    stub.write_text(STUB_SENTVAE)
    py = tmp_path / "python"
    py.write_text("#!/bin/sh\necho 12 cpu\n")               # train_seconds, device of last.pt
    for f in (stub, py):
        f.chmod(0o755)
    env = {**os.environ, "PTB": str(tmp_path / "ptb"), "RUNS": str(tmp_path / "runs"), "SENTVAE": str(stub),
           "PYTHON": str(py), "THREADS": "1"}
    r = subprocess.run(["bash", str(BENCH / "ptb.sh"), "old-row"], cwd=tmp_path, env=env, capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    assert "config configs/experiments/ptb-old-row.toml" in r.stdout   # train.log, through tee
    kept = tmp_path / "bench" / "results" / "ptb-old-row"
    live = tmp_path / "runs" / "ptb-old-row"
    for name in ("eval-test", "eval-k500"):
        assert not (kept / f"{name}.sentences.jsonl").exists()
        assert gzip.decompress((kept / f"{name}.sentences.jsonl.gz").read_bytes()) == \
            (live / f"{name}.sentences.jsonl").read_bytes()
        assert (kept / f"{name}.json").read_text() == '{"iw_nll": 1.5}\n'
    assert (kept / "time.txt").read_text().startswith("12 s training, 1 thread(s), ")
    r = subprocess.run(["bash", str(BENCH / "ptb.sh"), "no-such-row"], cwd=tmp_path, env=env, capture_output=True, text=True)
    assert r.returncode == 2 and "no recipe configs/ptb-no-such-row.toml" in r.stderr


def test_ptb_sh_refuses_parts_that_would_do_nothing_or_not_what_was_asked(tmp_path):
    """PARTS names parts of FULL=1's whole-test evaluation: without FULL=1 a call did nothing at
    all (and said nothing), PARTS=none with FULL=1 ran a part named "none"; each is one line, exit 2,
    before anything trains."""
    (tmp_path / "configs").mkdir()
    (tmp_path / "configs" / "ptb-row.toml").write_text('lr = 1e-3\n')
    stub = tmp_path / "sentvae"
    stub.write_text(STUB_SENTVAE)
    stub.chmod(0o755)
    env = {**os.environ, "PTB": str(tmp_path / "ptb"), "RUNS": str(tmp_path / "runs"), "SENTVAE": str(stub)}
    for extra, said in (({"PARTS": "0 9 8"}, "give FULL=1 with it"), ({"PARTS": "none", "FULL": "1"}, "give one of them"),
                        ({"PARTS": "2 x", "FULL": "1"}, "'x' is not a part")):
        r = subprocess.run(["bash", str(BENCH / "ptb.sh"), "row"], cwd=tmp_path, env={**env, **extra},
                           capture_output=True, text=True)
        assert r.returncode == 2 and said in r.stderr and len(r.stderr.strip().splitlines()) == 1, (extra, r.stderr)
        assert not (tmp_path / "runs").exists()


def test_gpu_rows_runs_rows_side_by_side_passes_their_flags_and_brings_back_what_each_reached(tmp_path):
    """bench/gpu_rows.sh: every row through bench/ptb.sh at once, a row's quoted flags reach its
    `train`, and at DEADLINE a row still running is stopped while the others' figures, logs and
    best.pt come back under OUT (a lent GPU's call is minutes: what a row reached must not be lost)."""
    repo = tmp_path / "repo"
    (repo / "configs").mkdir(parents=True)
    (repo / "bench").mkdir()
    for name in ("ptb.sh", "gpu_rows.sh", "ptb_merge.py"):
        (repo / "bench" / name).write_text((BENCH / name).read_text())
    for r in ("fast", "slow"):
        (repo / "configs" / f"ptb-{r}.toml").write_text('lr = 1e-3\n')
    (repo / ".ptb").mkdir()
    (repo / ".ptb" / "ptb.test.txt").write_text("".join(f"sentence {i}\n" for i in range(25)))
    (repo / ".ptb" / "ptb.train.txt").write_text("a b\n")
    stub = tmp_path / "sentvae"
    stub.write_text(STUB_SENTVAE.replace("cmd=$1; shift\n", 'cmd=$1; shift; all="$*"\n')
                    .replace('    train) ', '    info) echo "{}" ;;\n    train) echo "args $all"; '
                             'case $out in *slow*) trap \'sleep 1; touch "$out/last.pt"; echo "stopped: saved last.pt"; '
                             'exit 130\' TERM; sleep 60 & wait $! ;; esac; '))
    py = tmp_path / "python"
    py.write_text("#!/bin/sh\necho 12 cpu\n")
    for f in (stub, py):
        f.chmod(0o755)
    out = tmp_path / "out"
    env = {**os.environ, "SENTVAE": str(stub), "PYTHON": str(py), "OUT": str(out), "DEADLINE": "8",
           "RUNS": str(tmp_path / "runs"), "CHECKPOINTS": "all"}
    r = subprocess.run(["bash", "bench/gpu_rows.sh", "fast --init-from x.pt --seed 3", "slow"], cwd=repo, env=env,
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    assert (out / "fast" / "best.pt").exists() and (out / "fast" / "train.log").exists()
    assert "--init-from x.pt --seed 3" in (out / "fast" / "train.log").read_text()
    kept = out / "fast" / "results"
    assert {p.name for p in kept.glob("eval-k500-full-part*.json")} == {f"eval-k500-full-part{r}.json" for r in range(10)}
    assert (out / "fast" / "bench.out").read_text().splitlines()[-1] == "exit 0"
    assert (out / "slow" / "bench.out").read_text().splitlines()[-1] == "exit 124"    # stopped at DEADLINE
    assert not (out / "slow" / "best.pt").exists()
    # the trainer alone was stopped: it saved last.pt, and said so into train.log, before anything was copied
    assert (out / "slow" / "last.pt").exists()
    assert "stopped: saved last.pt" in (out / "slow" / "train.log").read_text()
    # a row without a recipe: refused before anything runs; a row that fails: the exit status says so
    r = subprocess.run(["bash", "bench/gpu_rows.sh", "fast", "no-such-row"], cwd=repo, env=env,
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 2 and "no recipe configs/ptb-no-such-row.toml" in r.stderr
    (repo / "configs" / "ptb-broken.toml").write_text('lr = 1e-3\n')
    stub.write_text(stub.read_text().replace("    train) ", '    train) case $out in *broken*) exit 1 ;; esac; '))
    r = subprocess.run(["bash", "bench/gpu_rows.sh", "broken"], cwd=repo, env=env, capture_output=True, text=True, timeout=60)
    assert r.returncode == 1 and "exit 1" in r.stdout


def test_svi_gap_reports_the_share_of_the_gap_the_refinement_closes(tmp_path):
    """bench/svi_gap.py: per sentence, the gap -ELBO - IW-NLL before refinement and the drop in
    -ELBO it brings, matched by index (files in any order, gzipped or not); a sentence whose bound
    rose is counted."""
    import svi_gap
    n = 40
    gaps = [1.0 + (i % 5) * 0.5 for i in range(n)]
    plain = [{"index": i, "elbo": 100.0 + i, "iw_nll": 100.0 + i - gaps[i]} for i in range(n)]
    drop = [0.5 * g if i else -0.1 for i, g in enumerate(gaps)]       # half of each gap, sentence 0 rose
    refined = [{"index": i, "elbo": 100.0 + i - drop[i], "iw_nll": 99.0 + i} for i in reversed(range(n))]
    (tmp_path / "eval-k500.sentences.jsonl").write_text("".join(json.dumps(r) + "\n" for r in plain))
    with gzip.open(tmp_path / "eval-svi20-k500.sentences.jsonl.gz", "wt") as f:
        f.write("".join(json.dumps(r) + "\n" for r in refined))
    (line,) = svi_gap.report(tmp_path)
    want = sum(drop) / sum(gaps)
    assert f"= {100 * want:.0f}% [" in line and f"gap {sum(gaps) / n:.2f};" in line, line
    closes = float(line.split("closes ")[1].split(" ")[0])
    assert closes == pytest.approx(sum(drop) / n, abs=0.006) and "bound rose on 1 of 40" in line, line
    est, lo, hi = svi_gap.share(drop, gaps)
    assert est == pytest.approx(want) and lo < want < hi
