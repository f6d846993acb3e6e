#!/bin/bash
# Probe (session 31): does the -log p(x) term's weight hold cpu-jeat near chance-level CE? px_weight 0.3 and 0.1
# (the preset and Algorithm 1: 1.0; 0 would be PreJEAT's loss with SGLD's cost). Small study scale (10,000
# images less the validation split, 4 epochs), seed 0, amp=auto (bf16 here), one thread beside the medium
# study's two workers. Runs after the Adam probe (one probe at a time).
cd /work/main && . .venv/bin/activate
export OMP_NUM_THREADS=1 JEAT_DATA=/work/shared/data
while pgrep -f "out /work/runs/probe/jeat-adam" > /dev/null || ! grep -q done /work/runs/probe/jeat-adam/probe.log; do sleep 30; done
for w in 0.3 0.1; do
  for s in 0; do
    n=jeat-pxw$w-s$s
    [ -f /work/runs/probe/jeat-pxw/$n/summary.json ] && continue
    if [ -f /work/runs/probe/jeat-pxw/$n/checkpoint.pt ]; then
      jeat train --resume /work/runs/probe/jeat-pxw/$n --no-progress
    else
      jeat train --preset cpu-jeat --data /work/shared/data --out /work/runs/probe/jeat-pxw --name $n --no-progress \
        --epochs 4 --set data.train_limit=10000 --set eval_robust_n=0 --seed $s --set method.px_weight=$w
    fi
  done
done
echo "[$(date +%T)] done"
