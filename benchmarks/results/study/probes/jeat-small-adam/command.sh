#!/bin/bash
# Probe (session 31): does cpu-jeat stall at chance-level CE with the paper's optimiser? Table 4's Adam 1e-4
# (betas 0.9/0.999, no weight decay, constant: its decay milestones and 1000-step warm-up lie past this run), and
# Adam 1e-3. Small study scale, seed 0, amp=auto (bf16 here), one thread beside the medium study's two workers.
# (Run as an inline loop of the same jeat train commands; benchmarks/study/probe_small.sh since.)
cd /work/main && . .venv/bin/activate
export OMP_NUM_THREADS=1 JEAT_DATA=/work/shared/data
for lr in 1e-4 1e-3; do
  bash benchmarks/study/probe_small.sh /work/runs/probe/jeat-adam jeat-adam$lr "0" cpu-jeat --set optim.name=adam \
    --set optim.lr=$lr --set optim.weight_decay=0 --set optim.nesterov=false --set optim.schedule=constant
done
