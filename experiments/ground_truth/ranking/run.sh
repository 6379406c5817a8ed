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
# single paths with a kernel per rate: does sharing one kernel make single-path training rank backwards?
variant spos_noshare_s0 seed=0 search.method=uniform search.relaxation=gumbel search.shared_kernel=false
# seed variation (seed = search.heldout_seed, as the comparison does)
for s in 1 2; do
  variant default_s$s seed=$s search.heldout_seed=$s
  variant warmup6_s$s seed=$s search.heldout_seed=$s search.warmup_epochs=6
  variant gumbel_s$s seed=$s search.heldout_seed=$s search.relaxation=gumbel
  variant noshare_s$s seed=$s search.heldout_seed=$s search.shared_kernel=false
  variant uniform_s$s seed=$s search.heldout_seed=$s search.method=uniform
done
variant noshare_s0 seed=0 search.shared_kernel=false
# 25% longer supernet training; seed 3 of it and of the default back to back, for their costs
variant long15_s0 seed=0 trainer.epochs=15
for s in 1 2 3; do variant long15_s$s seed=$s search.heldout_seed=$s trainer.epochs=15; done
variant default_s3 seed=3 search.heldout_seed=3
# few-shot supernets: one search per rate of block4.b1 (8 epochs each), each architecture scored by its own
fewshot() {  # fewshot SEED
  local seed=$1 runs=()
  for rate in 1 2; do
    local run=$OUT/fewshot8_s${seed}_b$rate
    [ -f "$run/arch.json" ] || $PYTHON -m dilnas.search search.space="$OUT/spaces/synthetic_deep_block4b1_$rate.yaml" \
      trainer.epochs=8 seed="$seed" search.heldout_seed="$seed" resume=true hydra.run.dir="$run" >> "$run.search.log" 2>&1
    runs+=("$run")
  done
  [ -f "$OUT/fewshot8_s$seed/rank.json" ] || $PYTHON experiments/ground_truth/ranking/few_shot.py rank $TABLE \
    "$OUT/fewshot8_s$seed" "${runs[@]}" > "$OUT/fewshot8_s$seed.rank.log" 2>&1
}
$PYTHON experiments/ground_truth/ranking/few_shot.py spaces synthetic_deep block4.b1 "$OUT/spaces"
for s in 0 1 2 3; do fewshot $s; done
$PYTHON experiments/ground_truth/ranking/collect.py experiments/ground_truth/ranking/synthetic_deep.csv "$OUT"/*_s[0-9]
