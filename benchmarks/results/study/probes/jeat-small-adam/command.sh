#!/bin/bash
# Probe (session 31): does cpu-jeat stall at chance-level CE with the paper's optimiser? Table 4's Adam 1e-4
# (betas 0.9/0.999, no weight decay, constant: its decay milestones lie past this run, its 1000-step warm-up too),
# and Adam 1e-3. Small study scale (10,000 images less the validation split, 4 epochs), seed 0, amp=auto (bf16
# here), one thread beside the medium study's two workers.
cd /work/main && . .venv/bin/activate
export OMP_NUM_THREADS=1 JEAT_DATA=/work/shared/data
for lr in 1e-4 1e-3; do
  for s in 0; do
    n=jeat-adam$lr-s$s
    [ -f /work/runs/probe/jeat-adam/$n/summary.json ] && continue
    if [ -f /work/runs/probe/jeat-adam/$n/checkpoint.pt ]; then
      jeat train --resume /work/runs/probe/jeat-adam/$n --no-progress
    else
      jeat train --preset cpu-jeat --data /work/shared/data --out /work/runs/probe/jeat-adam --name $n --no-progress \
        --epochs 4 --set data.train_limit=10000 --set eval_robust_n=0 --seed $s --set optim.name=adam \
        --set optim.lr=$lr --set optim.weight_decay=0 --set optim.nesterov=false --set optim.schedule=constant
    fi
  done
done
echo "[$(date +%T)] done"
