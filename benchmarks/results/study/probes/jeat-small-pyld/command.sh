#!/bin/bash
# Probe (session 31): does cpu-jeat learn while its chains keep up with the model if it samples as cpu-jempp does
# (JEM++'s proximal sampler, 5 x 5 steps, chains seeded from the class-conditional Gaussians; cpu-jempp learns
# to 41 % at the small scale with its gap near 0)? Every other setting cpu-jeat's (flip-crop, energy FGSM,
# px_weight 1, energy L2 0.1). Small study scale, seed 0, amp=auto (bf16 here), one thread beside the medium
# study's two workers.
cd /work/main && . .venv/bin/activate
export OMP_NUM_THREADS=1 JEAT_DATA=/work/shared/data
for s in 0 1; do
  n=jeat-pyld-s$s
  [ -f /work/runs/probe/jeat-pyld/$n/summary.json ] && continue
  if [ -f /work/runs/probe/jeat-pyld/$n/checkpoint.pt ]; then
    jeat train --resume /work/runs/probe/jeat-pyld/$n --no-progress
  else
    jeat train --preset cpu-jeat --data /work/shared/data --out /work/runs/probe/jeat-pyld --name $n --no-progress \
      --epochs 4 --set data.train_limit=10000 --set eval_robust_n=0 --seed $s --set method.sgld.sampler=pyld \
      --set method.sgld.steps=5 --set method.sgld.step_size=0.0 --set method.sgld.noise=0.0 \
      --set method.sgld.init=gaussian --set method.sgld.clamp=True
  fi
done
echo "[$(date +%T)] done"
