#!/usr/bin/env bash
# CamVid on a GPU machine, in one go, every table into one folder:
#   experiments/camvid/full_scale.sh OUT [DATA]          (DATA: the CamVid root, default ../shared/data/camvid)
#
#   1. lite/   the camvid_lite ground truth (30 uniform architectures + the reference rows, 3 seeds) with the
#              CPU protocol's exact recipe on the GPU: the cells that take hours on a CPU. dilnas-grid
#              continues where it stopped, so the same command finishes an interrupted run.
#   2. search/ the dilation search at full scale: the paper's regseg_exp48 space on CamVid train at native
#              360x480 (random short side 288..720, crops 360x480), evaluated on val, batch 12, SEARCH_EPOCHS.
#   3. full/   the full-scale ground truth: the search's pick, the paper's exp48 network and FULL_SAMPLE
#              uniform architectures of regseg_exp48, retrained from scratch with the paper's recipe (SGD 0.05,
#              poly, batch 12, EPOCHS epochs: the paper's 200 CamVid epochs by default) over FULL_SEEDS.
#   OUT/tables/ then holds lite_ground_truth.csv, full_ground_truth.csv and search_arch.json.
#
# DRY_RUN=1 runs every stage for 2 steps on the CPU (a test does so on a fake CamVid tree): it checks the
# commands, not the numbers. Other knobs: EPOCHS (200), SEARCH_EPOCHS (100), FULL_SAMPLE (2),
# FULL_SEEDS ([0,1]), LITE_SEEDS ([0,1,2]), WORKERS (8), PYTHON (python3).
set -euo pipefail
if [ $# -lt 1 ] || [ $# -gt 2 ]; then
  echo "usage: $0 OUT [DATA]" >&2
  exit 2
fi
OUT=$1
DATA=${2:-../shared/data/camvid}
PYTHON=${PYTHON:-python3}
HERE=$(cd "$(dirname "$0")" && pwd)
if [ ! -d "$DATA/train" ] || [ ! -d "$DATA/valannot" ]; then
  echo "$0: $DATA is not a CamVid root (expected train/ trainannot/ val/ valannot/)" >&2
  exit 2
fi
mkdir -p "$OUT/tables"
WORKERS=${WORKERS:-8}
if [ "${DRY_RUN:-0}" = 1 ]; then
  DEVICE=cpu; WORKERS=0
  LITE_SAMPLE=1; LITE_SEEDS='[0]'; FULL_SAMPLE=1; FULL_SEEDS='[0]'
  LITE_LENGTH=(trainer.max_steps=2 trainer.batch_size=2)
  SEARCH_LENGTH=(trainer.max_steps=2 trainer.batch_size=2 search.warmup_epochs=0 search.select_top=2
                 data.crop_size=[64,64] data.scale_range=[64,96])
  FULL_LENGTH=(trainer.max_steps=2 trainer.batch_size=2 data.crop_size=[64,64] data.scale_range=[64,96])
else
  DEVICE=cuda
  LITE_SAMPLE=30; LITE_SEEDS=${LITE_SEEDS:-[0,1,2]}
  FULL_SAMPLE=${FULL_SAMPLE:-2}; FULL_SEEDS=${FULL_SEEDS:-[0,1]}
  LITE_LENGTH=()
  SEARCH_LENGTH=(trainer.epochs="${SEARCH_EPOCHS:-100}" search.warmup_epochs=20)
  FULL_LENGTH=(trainer.epochs="${EPOCHS:-200}")
fi
COMMON=(data.root="$DATA" data.num_workers=$WORKERS device=$DEVICE)
# CamVid at native resolution: train on train, evaluate on val (the test split is not used here).
NATIVE=(data=camvid data.train_split=train data.eval_split=val data.scale_range=[288,720] data.crop_size=[360,480])
REFERENCE="$HERE/reference"
LITE_INCLUDE="[$REFERENCE/camvid_lite-1-1-1-1.json,$REFERENCE/camvid_lite-1-2-4-4.json,$REFERENCE/camvid_lite-2-5-5-5.json]"

quote_list() {  # quote_list ITEM...: a Hydra list of quoted strings, for dilnas-grid's retrain=
  local out="" item
  for item in "$@"; do out+="${out:+,}\"$item\""; done
  echo "[$out]"
}

echo "full_scale: 1/3 camvid_lite ground truth -> $OUT/lite"
$PYTHON -m dilnas.grid space=camvid_lite sample=$LITE_SAMPLE "seeds=$LITE_SEEDS" out="$OUT/lite" \
  "include=$LITE_INCLUDE" \
  "retrain=$(quote_list +experiment=camvid_lite "${COMMON[@]}" "${LITE_LENGTH[@]}")"
cp "$OUT/lite/ground_truth.csv" "$OUT/tables/lite_ground_truth.csv"

echo "full_scale: 2/3 search regseg_exp48 on CamVid at 360x480 -> $OUT/search"
search_done=0
[ -f "$OUT/search/arch.json" ] && search_done=1
if [ $search_done = 0 ]; then
  resume=false
  [ -f "$OUT/search/checkpoints/last.pt" ] && resume=true
  $PYTHON -m dilnas.search search.space=regseg_exp48 "${NATIVE[@]}" "${COMMON[@]}" optim=paper \
    optim.warmup_steps=500 trainer.batch_size=12 trainer.eval_every_epochs=25 "${SEARCH_LENGTH[@]}" \
    resume=$resume hydra.run.dir="$OUT/search"
fi
cp "$OUT/search/arch.json" "$OUT/tables/search_arch.json"

echo "full_scale: 3/3 regseg_exp48 ground truth on CamVid at 360x480 -> $OUT/full"
$PYTHON -m dilnas.grid space=regseg_exp48 sample=$FULL_SAMPLE "seeds=$FULL_SEEDS" out="$OUT/full" \
  "include=[$OUT/search/arch.json,$REFERENCE/regseg_exp48-paper.json]" \
  "retrain=$(quote_list "${NATIVE[@]}" "${COMMON[@]}" optim=paper optim.warmup_steps=500 \
    trainer=paper trainer.batch_size=12 trainer.eval_every_epochs=25 "${FULL_LENGTH[@]}")"
cp "$OUT/full/ground_truth.csv" "$OUT/tables/full_ground_truth.csv"
echo "full_scale: done; tables in $OUT/tables"
