#!/bin/bash
# Probe (session 31): does the -log p(x) term's weight hold cpu-jeat near chance-level CE? px_weight 0.3 and 0.1
# (the preset and Algorithm 1: 1.0). Small study scale, seed 0, amp=auto (bf16 here), one thread beside the
# medium study's two workers, after the Adam probe. (Run as an inline loop of the same jeat train commands;
# benchmarks/study/probe_small.sh since.)
cd /work/main && . .venv/bin/activate
export OMP_NUM_THREADS=1 JEAT_DATA=/work/shared/data
for w in 0.3 0.1; do
  bash benchmarks/study/probe_small.sh /work/runs/probe/jeat-pxw jeat-pxw$w "0" cpu-jeat --set method.px_weight=$w
done
