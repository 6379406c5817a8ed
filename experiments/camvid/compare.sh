#!/usr/bin/env bash
# The search measured on real CamVid (issue 19): per search seed, the default search (its held-out pick, and
# the rule's pick, which search.select_top=1 would keep: the selection records it) and random search at equal
# compute, each in OUT/<method>/<seed>, with search.heldout_seed equal to the seed.
#   experiments/camvid/compare.sh OUT SEED [SEED ...]     (from the repository root; resumable)
# A search that was stopped continues from its checkpoint (resume=true; a fresh directory just starts). Then,
# once every pick is in the ground truth (dilnas-grid include=[OUT/*/*/arch.json]), the paired table (the kept
# and the rule's picks, regret against the table):
#   python experiments/ground_truth/paired.py OUT experiments/ground_truth/camvid_lite.csv
set -euo pipefail
OUT=${1:?usage: $0 OUT SEED [SEED ...]}
shift
: "${1:?usage: $0 OUT SEED [SEED ...]}"
DATA=${DATA:-../shared/data/camvid}
PYTHON=${PYTHON:-python3}
export OMP_NUM_THREADS=${OMP_NUM_THREADS:-1}
run() {  # run METHOD SEED OVERRIDES...
  local method=$1 seed=$2
  shift 2
  local dir=$OUT/$method/$seed
  [ -f "$dir/arch.json" ] && return
  mkdir -p "$OUT/$method"
  echo "compare: $method seed $seed"
  $PYTHON -m dilnas.search +experiment=camvid_lite_search data.root="$DATA" seed="$seed" \
    search.heldout_seed="$seed" resume=true "$@" hydra.run.dir="$dir" >> "$dir.log" 2>&1
}
for seed in "$@"; do
  run default "$seed"
  run random "$seed" search.method=random
done
