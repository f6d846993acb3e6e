#!/bin/bash
# Probe (session 30): does cpu-jeat stall because of its peak learning rate (0.05)? Small study scale
# (10,000 images, 4 epochs), seed 0, amp=auto (bf16 here), one thread beside the medium study's two workers.
cd /work/main && . .venv/bin/activate
export OMP_NUM_THREADS=1 JEAT_DATA=/work/shared/data
for lr in 0.05 0.02 0.01; do
  for s in 0; do
    n=jeat-lr$lr-s$s
    [ -f /work/runs/probe/jeat-lr/$n/summary.json ] && continue
    if [ -f /work/runs/probe/jeat-lr/$n/checkpoint.pt ]; then
      jeat train --resume /work/runs/probe/jeat-lr/$n --no-progress
    else
      jeat train --preset cpu-jeat --data /work/shared/data --out /work/runs/probe/jeat-lr --name $n --no-progress \
        --epochs 4 --set data.train_limit=10000 --set eval_robust_n=0 --seed $s --set optim.lr=$lr
    fi
  done
done
echo "[$(date +%T)] done"
