#!/bin/bash
# Probe (session 30): does cpu-jeat at medium stall in fp32 as its bf16 run does (gap collapse at step ~350)?
cd /work/study-tree && . /work/main/.venv/bin/activate
export OMP_NUM_THREADS=1 JEAT_DATA=/work/shared/data PYTHONPATH=/work/study-tree/src
python -m jeat train --preset cpu-jeat --data /work/shared/data --out /work/runs/probe --name jeat-fp32-s0 --no-progress --epochs 8 --set data.train_limit=50000 --set eval_robust_n=0 --seed 0 --set amp=none
