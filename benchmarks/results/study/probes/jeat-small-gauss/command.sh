#!/bin/bash
# Probe (session 31): which part of JEM++'s sampler lets cpu-jeat learn (jeat_small_pyld.md)? Only the chain
# seeds change: cpu-jeat's 10 SGLD steps, started from the class-conditional Gaussians instead of U(0, 1). Small
# study scale, seeds 0 and 1, amp=auto (bf16 here), one thread beside the medium study's two workers. (Run as an
# inline loop of the same jeat train commands; benchmarks/study/probe_small.sh since.)
cd /work/main && . .venv/bin/activate
export OMP_NUM_THREADS=1 JEAT_DATA=/work/shared/data
bash benchmarks/study/probe_small.sh /work/runs/probe/jeat-gauss jeat-gauss "0 1" cpu-jeat --set method.sgld.init=gaussian
