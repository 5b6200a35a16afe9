#!/usr/bin/env bash
# One row of README's PTB results table: train configs/ptb-ROW.toml, then evaluate its best
# checkpoint on PTB test. Run from the repository root after `make install`:
#   bench/ptb.sh lstm-vae-pretrain-freebits
# Writes runs/ptb-ROW/{train.log, time.txt, eval-test.json, eval-k500.json}.
#   eval-test.json: the whole test set (3,761 sentences): -ELBO, KL, MI, AU (K = 1 suffices)
#   eval-k500.json: IW-NLL and perplexity with K = 500 on every 10th test sentence (377; the
#                   full set at K = 500 takes ~45 min a row on 2 CPU cores); the LM rows are
#                   evaluated on the same sentences, so the comparison is paired.
# THREADS=1 runs two rows side by side on a 2-core machine.
set -euo pipefail
row=${1:?usage: bench/ptb.sh ROW   (ROW: a configs/ptb-ROW.toml)}
cfg=configs/ptb-$row.toml
[ -f "$cfg" ] || { echo "bench/ptb.sh: no recipe $cfg" >&2; exit 2; }
ptb=${PTB:-../shared/data/ptb}
out=runs/ptb-$row
sentvae=${SENTVAE:-.venv/bin/sentvae}
export OMP_NUM_THREADS=${THREADS:-${OMP_NUM_THREADS:-2}}
mkdir -p runs "$out"
subset=runs/ptb.test.every10.txt
awk 'NR % 10 == 1' "$ptb/ptb.test.txt" > "$subset"

if [ ! -f "$out/time.txt" ]; then
    start=$(date +%s)
    "$sentvae" train --config "$cfg" -q "${@:2}" 2>&1 | tee "$out/train.log"
    echo "$(( $(date +%s) - start )) s training, $OMP_NUM_THREADS thread(s), $(nproc --all) cores: $(lscpu | sed -n 's/^Model name: *//p')" > "$out/time.txt"
fi
"$sentvae" eval -c "$out/best.pt" --data "$ptb/ptb.test.txt" -k 1 --json > "$out/eval-test.json"
"$sentvae" eval -c "$out/best.pt" --data "$subset" -k 500 --json > "$out/eval-k500.json"
cat "$out/time.txt" "$out/eval-test.json" "$out/eval-k500.json"
