# What ran on the H200 on 2026-12-04 (a record, not a tool): from the repository root, with the PTB
# files copied to .ptb/ and the wheels of datasets 5.2.0, dill 0.4.1 and multiprocess 0.70.19 in .whl/.
# setup, at the start of each call:
# sourced at the start of every device command
python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl || exit 1
export PYTHONPATH=/tmp/site:$PWD HF_HUB_OFFLINE=1 HF_DATASETS_OFFLINE=1 PYTHONUNBUFFERED=1 HF_DATASETS_CACHE=/tmp/hf
mkdir -p ../shared/data/ptb && cp .ptb/* ../shared/data/ptb/
mkdir -p .venv/bin && ln -sf "$(command -v python3)" .venv/bin/python
printf '#!/bin/sh\nexec python3 -m sentvae "$@"\n' > .venv/bin/sentvae && chmod +x .venv/bin/sentvae
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader
python3 -c "import torch, datasets; print('torch', torch.__version__, torch.cuda.get_device_name(), 'datasets', datasets.__version__)"

# call 1 (probes, 2 min): eval-k500-full-timing.txt; its pytest run was lost to pytest-xdist (-n 8)
# refusing test ids that differ between workers, so the tests ran again in call 2, serially
export RUNS=/tmp/runs THREADS=1
mkdir -p $RUNS
( timeout 100 python3 -m pytest -q -n 8 -p no:cacheprovider > $OUT/pytest.txt 2>&1; echo "rc $?" >> $OUT/pytest.txt ) &
for row in lstm-vae-aggressive lstm-vae-pretrain-freebits transformer-vae-fb3-cosine14 transformer-lm-cosine; do
  ( OMP_NUM_THREADS=1 timeout 100 .venv/bin/sentvae train --config configs/ptb-$row.toml --out $RUNS/ptb-$row --time-budget 45 --log-every 100 --eval-every 475 > $OUT/$row.log 2>&1; echo "rc $?" >> $OUT/$row.log ) &
done
wait
for row in lstm-vae-pretrain-freebits transformer-vae-fb3-cosine14; do
  s=$SECONDS; timeout 60 .venv/bin/sentvae eval -c $RUNS/ptb-$row/best.pt --data .ptb/ptb.test.txt -k 500 --max-tokens 50000 --json -q >> $OUT/eval.txt 2>&1; echo "$row eval: $((SECONDS - s)) s" >> $OUT/eval.txt
done
tail -4 $OUT/*.log; cat $OUT/eval.txt; tail -25 $OUT/pytest.txt

# call 2 (6.6 min): pytest-first-run.txt, the three *.metrics.jsonl, gpu-util.txt
export RUNS=/tmp/runs THREADS=1 EVAL_MAX_TOKENS=50000
mkdir -p $RUNS; L=/tmp/logs; mkdir -p $L
( timeout 400 python3 -m pytest -q -p no:cacheprovider > $OUT/pytest.txt 2>&1; echo "rc $?" >> $OUT/pytest.txt ) &
( BUDGET=380 bench/ptb.sh lstm-vae-pretrain-freebits-gpu > $L/row.out 2>&1
  o=$RUNS/ptb-lstm-vae-pretrain-freebits-gpu
  if [ -f $o/time.txt ]; then s=$SECONDS
    .venv/bin/sentvae eval -c $o/best.pt --data .ptb/ptb.test.txt -k 500 --max-tokens 50000 --json -q --per-sentence $o/eval-k500-full.sentences.jsonl > $o/eval-k500-full.json
    echo "eval-k500-full: $((SECONDS - s)) s" >> $o/eval-times.txt; bench/ptb.sh lstm-vae-pretrain-freebits-gpu >> $L/row.out 2>&1; fi ) &
for row in lstm-vae-aggressive transformer-vae-fb3-cosine14; do
  ( OMP_NUM_THREADS=1 timeout 200 .venv/bin/sentvae train --config configs/ptb-$row.toml --out $RUNS/ptb-$row --time-budget 150 --log-every 25 > $L/$row.out 2>&1 ) &
done
( for i in $(seq 48); do nvidia-smi --query-gpu=utilization.gpu,memory.used --format=csv,noheader; sleep 8; done > $L/gpu-util.txt ) &
wait
for d in $RUNS/ptb-*; do cp $d/metrics.jsonl $L/$(basename $d).metrics.jsonl 2>/dev/null; done
tar czf $OUT/results.tgz bench/results/ptb-lstm-vae-pretrain-freebits-gpu /tmp/logs
tail -5 $L/*.out; tail -15 $OUT/pytest.txt; ls $L

# call 3 (1 min), after the fixes:
python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl || exit 1
export PYTHONPATH=/tmp/site:$PWD PYTHONUNBUFFERED=1
timeout 100 python3 -m pytest -q -p no:cacheprovider tests/test_api.py tests/test_distributed.py tests/test_cuda.py 2>&1 | tail -15
