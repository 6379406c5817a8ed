#!/usr/bin/env bash
# The ranking experiments on synthetic_deep (experiments/ground_truth/README.md, "Ranking"): per variant a
# search, then dilnas-rank of its supernet against the shipped table; then the table of every run.
#   experiments/ground_truth/ranking/run.sh OUT_DIR      (from the repository root; resumable: finished runs are kept)
set -euo pipefail
OUT=${1:?usage: $0 OUT_DIR}
export OMP_NUM_THREADS=${OMP_NUM_THREADS:-1}
PYTHON=${PYTHON:-python3}
TABLE=experiments/ground_truth/synthetic_deep.csv
mkdir -p "$OUT"
variant() {  # variant NAME OVERRIDES...
  local name=$1; shift
  local run=$OUT/$name
  # resume=true: a search that was stopped continues from its checkpoint (a fresh directory just starts)
  [ -f "$run/arch.json" ] || $PYTHON -m dilnas.search search.space=synthetic_deep "$@" resume=true \
    hydra.run.dir="$run" >> "$run.search.log" 2>&1
  [ -f "$run/rank.json" ] || $PYTHON -m dilnas.rank run_dir="$run" ground_truth=$TABLE > "$run.rank.log" 2>&1
}
variant default_s0 seed=0
variant warmup6_s0 seed=0 search.warmup_epochs=6
variant spos_s0 seed=0 search.method=uniform search.relaxation=gumbel
variant uniform_s0 seed=0 search.method=uniform
variant gumbel_s0 seed=0 search.relaxation=gumbel
variant gumbel_warmup6_s0 seed=0 search.relaxation=gumbel search.warmup_epochs=6
# single paths with a kernel per rate: does sharing one kernel make single-path training rank backwards?
variant spos_noshare_s0 seed=0 search.method=uniform search.relaxation=gumbel search.shared_kernel=false
# seed variation of the two best variants (seed = search.heldout_seed, as the comparison does)
for s in 1 2; do
  variant default_s$s seed=$s search.heldout_seed=$s
  variant warmup6_s$s seed=$s search.heldout_seed=$s search.warmup_epochs=6
done
$PYTHON experiments/ground_truth/ranking/collect.py experiments/ground_truth/ranking/synthetic_deep.csv "$OUT"/*_s*
