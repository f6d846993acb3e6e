#!/bin/bash
# Probe (session 30): does cpu-jeat stall because of its peak learning rate (0.05)? Small study scale, seed 0,
# amp=auto (bf16 here), one thread beside the medium study's two workers. (Run as an inline loop of the same
# jeat train commands; benchmarks/study/probe_small.sh since session 31.)
cd /work/main && . .venv/bin/activate
export OMP_NUM_THREADS=1 JEAT_DATA=/work/shared/data
for lr in 0.05 0.02 0.01; do
  bash benchmarks/study/probe_small.sh /work/runs/probe/jeat-lr jeat-lr$lr "0" cpu-jeat --set optim.lr=$lr
done
