#!/usr/bin/env bash
# The pre-registered paired comparison (README: "Plan: the pre-registered paired comparison"): on every seed of
# the plan, the three arms with search.heldout_seed equal to the seed, each in OUT/<space>/<arm>/<seed>.
#   experiments/ground_truth/preregistered.sh OUT synthetic_deep|camvid_lite [SEED ...]
# (from the repository root; resumable: a finished run is kept, a stopped one continues). Seeds default to the
# plan's: 100..119 on synthetic_deep, 100..107 on camvid_lite. RANDOM_STEPS is the random arm's steps per
# architecture, measured beforehand so that its CPU time matches the default's on the same machine (unset:
# search.random_steps' own default, the default search's training compute). Then, once every pick is in the
# table (dilnas-grid include=[OUT/<space>/*/*/arch.json]):
#   python experiments/ground_truth/paired.py OUT/<space> experiments/ground_truth/<space>.csv
set -euo pipefail
OUT=${1:?usage: $0 OUT synthetic_deep|camvid_lite [SEED ...]}
SPACE=${2:?usage: $0 OUT synthetic_deep|camvid_lite [SEED ...]}
shift 2
PYTHON=${PYTHON:-python3}
export OMP_NUM_THREADS=${OMP_NUM_THREADS:-1}
case $SPACE in
  synthetic_deep) PRESET=(search.space=synthetic_deep); SEEDS=$(seq 100 119) ;;
  camvid_lite) PRESET=(+experiment=camvid_lite_search "data.root=${DATA:-../shared/data/camvid}"); SEEDS=$(seq 100 107) ;;
  *) echo "$0: unknown space $SPACE; expected synthetic_deep or camvid_lite" >&2; exit 2 ;;
esac
[ $# -gt 0 ] && SEEDS=$*
RANDOM_ARM=(search.method=random ${RANDOM_STEPS:+search.random_steps=$RANDOM_STEPS})
run() {  # run ARM SEED OVERRIDES...
  local arm=$1 seed=$2
  shift 2
  local dir=$OUT/$SPACE/$arm/$seed
  [ -f "$dir/arch.json" ] && return
  mkdir -p "$OUT/$SPACE/$arm"
  echo "preregistered: $SPACE $arm seed $seed"
  $PYTHON -m dilnas.search "${PRESET[@]}" seed="$seed" search.heldout_seed="$seed" resume=true "$@" \
    hydra.run.dir="$dir" >> "$dir.log" 2>&1
}
for seed in $SEEDS; do
  run default "$seed"
  run random "$seed" "${RANDOM_ARM[@]}"
  run uniform "$seed" search.method=uniform
done
