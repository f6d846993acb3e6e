#!/bin/bash
# Probe (session 31): which part of JEM++'s sampler lets cpu-jeat learn (jeat_small_pyld.md)? Here only the chain
# seeds change: cpu-jeat's 10 SGLD steps, started from the class-conditional Gaussians instead of U(0, 1). Small
# study scale, seed 0, amp=auto (bf16 here), one thread beside the medium study's two workers.
cd /work/main && . .venv/bin/activate
export OMP_NUM_THREADS=1 JEAT_DATA=/work/shared/data
for s in 0 1; do
  n=jeat-gauss-s$s
  [ -f /work/runs/probe/jeat-gauss/$n/summary.json ] && continue
  if [ -f /work/runs/probe/jeat-gauss/$n/checkpoint.pt ]; then
    jeat train --resume /work/runs/probe/jeat-gauss/$n --no-progress
  else
    jeat train --preset cpu-jeat --data /work/shared/data --out /work/runs/probe/jeat-gauss --name $n --no-progress \
      --epochs 4 --set data.train_limit=10000 --set eval_robust_n=0 --seed $s --set method.sgld.init=gaussian
  fi
done
echo "[$(date +%T)] done"
