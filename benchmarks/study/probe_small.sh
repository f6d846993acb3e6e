#!/bin/bash
# One probe arm at the small study scale (10,000 CIFAR-10 images less the preset's validation split, 4 epochs,
# no robust evaluation at the end): `jeat train --preset PRESET` with the arm's changes, one run per seed,
# resumable (a finished run is skipped, a started one resumes from its checkpoint). The probes of
# benchmarks/results/study/probes/ are calls of this script (their command.sh).
#
#   bash benchmarks/study/probe_small.sh OUT NAME "SEEDS" PRESET [--set FIELD=VALUE ...]
#   bash benchmarks/study/probe_small.sh ../runs/probe/jeat-lr jeat-lr0.02 "0" cpu-jeat --set optim.lr=0.02
#
# Runs OUT/NAME-sSEED; data from $JEAT_DATA (default ../shared/data); threads from $OMP_NUM_THREADS.
set -euo pipefail
OUT=${1:?OUT}; NAME=${2:?NAME}; SEEDS=${3:?SEEDS}; PRESET=${4:?PRESET}; shift 4
DATA=${JEAT_DATA:-../shared/data}
for s in $SEEDS; do
  run=$OUT/$NAME-s$s
  if [ -f "$run/summary.json" ]; then
    continue
  elif [ -f "$run/checkpoint.pt" ]; then
    jeat train --resume "$run" --no-progress
  else
    jeat train --preset "$PRESET" --data "$DATA" --out "$OUT" --name "$NAME-s$s" --no-progress --epochs 4 \
      --set data.train_limit=10000 --set eval_robust_n=0 --seed "$s" "$@"
  fi
done
