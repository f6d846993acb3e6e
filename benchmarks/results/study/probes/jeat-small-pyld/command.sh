#!/bin/bash
# Probe (session 31): does cpu-jeat learn while its chains keep up with the model if it samples as cpu-jempp does
# (JEM++'s proximal sampler, 5 x 5 steps, chains seeded from the class-conditional Gaussians)? Every other
# setting cpu-jeat's. Small study scale, seeds 0 and 1, amp=auto (bf16 here), one thread beside the medium
# study's two workers. (Run as an inline loop of the same jeat train commands; benchmarks/study/probe_small.sh since.)
cd /work/main && . .venv/bin/activate
export OMP_NUM_THREADS=1 JEAT_DATA=/work/shared/data
bash benchmarks/study/probe_small.sh /work/runs/probe/jeat-pyld jeat-pyld "0 1" cpu-jeat \
  --set method.sgld.sampler=pyld --set method.sgld.steps=5 --set method.sgld.step_size=0.0 \
  --set method.sgld.noise=0.0 --set method.sgld.init=gaussian --set method.sgld.clamp=True
