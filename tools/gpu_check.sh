#!/usr/bin/env bash
# `make gpu-check`: the CUDA paths in one go, on a machine with a GPU. Without CUDA it says so and exits 0.
#   1. the GPU tests (pytest -m gpu);
#   2. retraining steps in float16 autocast with the gradient scaler (trainer.amp_dtype=auto on CUDA);
#   3. softmax and gumbel search steps (weights in float16 autocast, logits in full precision);
#   4. dilnas-bench infer at 1024x2048 and 512x1024 (CUDA events; eager, deploy, channels_last, fp16, onnxruntime);
#   5. exp48 through onnxruntime on every execution provider installed: CPU and CUDA fp32 and int8, TensorRT
#      fp16 and int8 (tools/onnx_providers.py; a provider that is not installed is a row saying so), FPS at
#      1024x2048 beside the paper's 30-37 FPS on a T4;
#   6. dilnas-bench search (supernet against derived network, time and peak memory);
#   7. DDP over NCCL with torchrun when there are 2 or more GPUs.
# Everything goes to GPU_CHECK_DIR (default runs/gpu-check/DATE): one log per step and the benchmark tables.
set -euo pipefail
PYTHON=${PYTHON:-python3}
GPUS=$($PYTHON -c "import torch; print(torch.cuda.device_count() if torch.cuda.is_available() else 0)")
if [ "$GPUS" = 0 ]; then
  echo "gpu-check: no CUDA device here; skipped (nothing to check)"
  exit 0
fi
OUT=${GPU_CHECK_DIR:-runs/gpu-check/$(date +%Y-%m-%d_%H-%M-%S)}
mkdir -p "$OUT"
ARCH=experiments/synthetic/tiny_short_dilated.json
QUICK=(data.num_workers=2 device=cuda)
step() {  # step NAME COMMAND...: run, keep the log, stop at the first failure with its tail
  local name=$1; shift
  echo "gpu-check: $name ..."
  if ! "$@" > "$OUT/$name.log" 2>&1; then
    tail -n 20 "$OUT/$name.log"
    echo "gpu-check: $name FAILED (log: $OUT/$name.log)"
    exit 1
  fi
}
$PYTHON -c "import torch; print(f'gpu-check: {torch.cuda.get_device_name(0)} x $GPUS, torch {torch.__version__}')"
step pytest-gpu $PYTHON -m pytest -m gpu -q -p no:cacheprovider
step retrain-amp $PYTHON -m dilnas.retrain arch=$ARCH "${QUICK[@]}" trainer.max_steps=60 trainer.amp=true \
  hydra.run.dir="$OUT/retrain-amp"
grep -q "float16 autocast" "$OUT/retrain-amp.log" || { echo "gpu-check: retraining did not use float16"; exit 1; }
for relaxation in softmax gumbel; do
  step search-$relaxation $PYTHON -m dilnas.search "${QUICK[@]}" trainer.epochs=3 search.warmup_epochs=1 \
    search.relaxation=$relaxation hydra.run.dir="$OUT/search-$relaxation"
done
for size in "[1024,2048]" "[512,1024]"; do
  name=bench-infer-${size//[^0-9]/x}
  step "$name" $PYTHON -m dilnas.bench infer arch=exp48_decoder26 "input_size=$size" device=cuda repeats=20
  cat "$OUT/$name.log"
done
echo "gpu-check: the paper runs exp48 at 1024x2048 at 30-37 FPS on a T4: compare the img/s column above"
step onnx-providers $PYTHON tools/onnx_providers.py --size 1024 2048 --repeats 20 --out "$OUT"
cat "$OUT/onnx-providers.log"
step bench-search $PYTHON -m dilnas.bench search device=cuda
cat "$OUT/bench-search.log"
if [ "$GPUS" -ge 2 ]; then
  step ddp-nccl torchrun --standalone --nproc_per_node=2 -m dilnas.retrain arch=$ARCH "${QUICK[@]}" \
    trainer.max_steps=40 trainer.batch_size=4 hydra.run.dir="$OUT/ddp-nccl"
else
  echo "gpu-check: one GPU; DDP over NCCL skipped"
fi
echo "gpu-check: all passed; logs and tables in $OUT"
