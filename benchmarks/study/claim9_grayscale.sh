#!/bin/bash
# Claim 9's ablation of JEM++'s OOD inversion on the stability study's grayscale sets (issue 37;
# benchmarks/results/claim9_ood_notes.md). Trains, at the stability study's budget in fp32 on one thread:
# standard and PGD-AT classifiers, cpu-jempp with one change each (energy L2 off, 4x PYLD steps, uniform
# seeds, cpu-jem's augmentation), and cpu-jem with cpu-jempp's augmentation. Resumable: a finished run is
# skipped, a started one resumes from its checkpoint.
#
#   bash benchmarks/study/claim9_grayscale.sh OUT STABILITY_DATA [gray28|digits28 ...]
#   SEEDS="3 4" ARMS="jempp-uniform-init jempp" bash benchmarks/study/claim9_grayscale.sh OUT STABILITY_DATA digits28
#
# SEEDS (default 0 1 2) and ARMS (default: the classifiers and the three cpu-jempp arms) narrow the runs; the arm
# `jempp` is the preset itself, for seeds beyond the stability study's 0-2 (which already trained it).
#
# STABILITY_DATA is the stability study's built data folder (OUT/data of benchmarks/stability/stability.py,
# holding cifar10-gray28/ and digits28/). Then score the runs (and the stability study's default runs):
#   python benchmarks/study/claim9_ood.py --group "..." --by-name --data STABILITY_DATA/digits28 \
#       --sets uniform,gaussian,constant,interp OUT/*-digits28-s?
set -euo pipefail
OUT=${1:?OUT}; DATA=${2:?STABILITY_DATA}; shift 2
SETS=("${@:-gray28 digits28}")
SEEDS=${SEEDS:-0 1 2}
ARMS=${ARMS:-standard pgd jempp-no-l2 jempp-uniform-init jempp-chains20}
arm_args() {  # arm -> its preset and its one change
  case $1 in
    standard) echo cpu-standard ;;
    pgd) echo cpu-pgd ;;
    jempp) echo cpu-jempp ;;
    jempp-no-l2) echo "cpu-jempp --set method.energy_l2=0" ;;
    jempp-uniform-init) echo "cpu-jempp --set method.sgld.init=uniform" ;;
    jempp-chains20) echo "cpu-jempp --set method.sgld.steps=20" ;;
    # cpu-jem with cpu-jempp's augmentation: cpu-jempp is cpu-jem plus JEM++'s sampler (PYLD 5 x 5,
    # clamped, Gaussian seeds) and JEM's augmentation, so this arm leaves the sampler as the one difference
    # (the jempp method refuses plain SGLD, so the converse is the next arm)
    jem-augment-jem) echo "cpu-jem --set data.augment=jem" ;;
    # and the converse: cpu-jempp without JEM's input noise (pad-crop-flip only, cpu-jem's augmentation)
    jempp-flip-crop) echo "cpu-jempp --set data.augment=flip-crop" ;;
    *) return 1 ;;
  esac
}
for arm in $ARMS; do arm_args "$arm" >/dev/null || { echo "unknown arm '$arm'" >&2; exit 2; }; done
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
  for s in $SEEDS; do
    for arm in $ARMS; do
      read -r preset extra <<<"$(arm_args "$arm")"
      # shellcheck disable=SC2086  # extra is "--set key=value" or empty: split on purpose
      train "$set" "$arm" "$preset" "$s" $extra
    done
  done
done
