#!/usr/bin/env bash
# Start (or restart) the medium study's workers (issue 37) from its frozen code, so that a fresh machine resumes it
# with one command: bash benchmarks/study/medium_workers.sh [WORKERS] (default 2, one per core).
# Finished runs are read from the committed archive (complete.txt) and never run again; a run whose folder was lost
# with its machine starts over. Logs: $RUNS/medium_w<N>.log; each stage's output: $RUNS/medium/<run>/stages.log.
# Overridable: STUDY_COMMIT (the study's code, README "frozen copy"), RUNS, TREE, JEAT_DATA, PYTHON.
set -euo pipefail
MAIN="$(cd "$(dirname "$0")/../.." && pwd)"
STUDY_COMMIT="${STUDY_COMMIT:-87be04c}"
RUNS="${RUNS:-$(dirname "$MAIN")/runs}"
TREE="${TREE:-$(dirname "$MAIN")/study-tree}"
DATA="${JEAT_DATA:-$(dirname "$MAIN")/shared/data}"
PYTHON="${PYTHON:-$MAIN/.venv/bin/python}"
WORKERS="${1:-2}"
[ -x "$PYTHON" ] || { echo "no python at $PYTHON: set up the venv first (README), or set PYTHON" >&2; exit 1; }
[ -d "$TREE" ] || git -C "$MAIN" worktree add --detach "$TREE" "$STUDY_COMMIT"
have="$(git -C "$TREE" rev-parse HEAD)"
want="$(git -C "$MAIN" rev-parse "$STUDY_COMMIT")"
[ "$have" = "$want" ] || { echo "$TREE is at $have, not the study's $want: move it only as the README says" >&2; exit 1; }
mkdir -p "$RUNS"
n=$(find "$RUNS" -maxdepth 1 -name "medium_w*.log" | wc -l)
for _ in $(seq "$WORKERS"); do
  n=$((n + 1))
  log="$RUNS/medium_w$n.log"
  # one thread a worker (two workers on two cores); PYTHONPATH puts the frozen src ahead of the editable install
  ( cd "$TREE" && echo "study tree $have, $(date -u +%FT%TZ), $(grep -m1 'model name' /proc/cpuinfo 2>/dev/null)" > "$log" \
    && OMP_NUM_THREADS=1 PYTHONPATH="$TREE/src" PATH="$(dirname "$PYTHON"):$PATH" setsid nohup "$PYTHON" \
      benchmarks/study/study.py --data "$DATA" --out "$RUNS/medium" --scale medium --seeds 0 1 \
      --archive "$MAIN/benchmarks/results/study/medium" >> "$log" 2>&1 < /dev/null & )
  echo "worker $n: $log"
  sleep 5  # let the first worker claim its run before the next looks
done
