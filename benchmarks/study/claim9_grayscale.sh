#!/bin/bash
# Claim 9's ablation of JEM++'s OOD inversion on the stability study's grayscale sets (issue 37;
# benchmarks/results/claim9_ood_notes.md). Trains, at the stability study's budget in fp32 on one thread:
# standard and PGD-AT classifiers, and cpu-jempp with one change each (energy L2 off, 4x PYLD steps, uniform
# seeds). Resumable: a finished run is skipped, a started one resumes from its checkpoint.
#
#   bash benchmarks/study/claim9_grayscale.sh OUT STABILITY_DATA [gray28|digits28 ...]
#
# STABILITY_DATA is the stability study's built data folder (OUT/data of benchmarks/stability/stability.py,
# holding cifar10-gray28/ and digits28/). Then score the runs (and the stability study's default runs):
#   python benchmarks/study/claim9_ood.py --group "..." --by-name --data STABILITY_DATA/digits28 \
#       --sets uniform,gaussian,constant,interp OUT/*-digits28-s?
set -euo pipefail
OUT=${1:?OUT}; DATA=${2:?STABILITY_DATA}; shift 2
SETS=("${@:-gray28 digits28}")
export OMP_NUM_THREADS=1
BUDGET=(--set data.train_limit=12000 --set data.test_limit=2000 --set eval_robust_n=0 --set log_every=10
        --set checkpoint_every=25 --set amp=none)
train() {  # set name preset seed extra...
  local set=$1 name=$2 preset=$3 seed=$4; shift 4
  local run=$OUT/$name-$set-s$seed folder epochs extra=()
  if [ "$set" = gray28 ]; then folder=cifar10-gray28; epochs=3; else folder=digits28; epochs=31
    extra=(--set data.valid_size=300); fi  # digits28: 1,497 images, 300 held out (stability.py's VALID)
  [ -f "$run/model.safetensors" ] && return
  echo "[$(date +%T)] $set $name s$seed"
  if [ -f "$run/checkpoint.pt" ]; then python -m jeat train --no-progress --resume "$run"; return; fi
  python -m jeat train --no-progress --preset "$preset" --seed "$seed" --out "$OUT" --name "$(basename "$run")" \
    --epochs $epochs "${BUDGET[@]}" "${extra[@]}" --dataset npz --data "$DATA/$folder" "$@"
}
for set in ${SETS[@]}; do
  for s in 0 1 2; do train $set standard cpu-standard $s; train $set pgd cpu-pgd $s; done
  for s in 0 1 2; do
    train $set jempp-no-l2 cpu-jempp $s --set method.energy_l2=0
    train $set jempp-uniform-init cpu-jempp $s --set method.sgld.init=uniform
    train $set jempp-chains20 cpu-jempp $s --set method.sgld.steps=20
  done
done
