#!/usr/bin/env bash
# One-shot GPU check, under 8 minutes on one GPU. Everything lands under one folder (default runs/gpu_check):
#   1. throughput_*.json: paper-f16 training throughput (SC-VAE, AE, strong VQ) at batch 8 and at the largest
#      batch that fits, eager and torch.compile;
#   2. torchrun/: a two-process torchrun (NCCL with one GPU per rank when there are 2+ GPUs, else both ranks
#      share the one GPU through Gloo), and its stdout;
#   3. camvid/: a small-64 training on the CamVid test frames with the GAN objective (and LPIPS when SCVAE_LPIPS_VGG and
#      SCVAE_LPIPS_LIN name the weights files; nothing is downloaded), with its reconstruction grid (PNG).
# On CPU, for the test: PRESET=tiny MODELS=ae MAX_BATCH=16 TRAIN_PRESET=tiny DISC_LAYERS=2 TRAIN_STEPS=4 DATA=folder STEPS=1 \
#   bash bench/gpu_check.sh OUT
set -euo pipefail
OUT=${1:-runs/gpu_check}
PRESET=${PRESET:-paper-f16}
TRAIN_PRESET=${TRAIN_PRESET:-small-64}
TRAIN_STEPS=${TRAIN_STEPS:-2000}
DATA=${DATA:-../shared/data/camvid/test}  # the frames; the annotation folders are label maps
STEPS=${STEPS:-20}
MODELS=${MODELS:-scvae,ae,vqvae-strong}
MAX_BATCH=${MAX_BATCH:-512}
DISC_LAYERS=${DISC_LAYERS:-3}  # the PatchGAN needs resolution >= 3 * 2**layers
mkdir -p "$OUT"
HERE=$(dirname "$0")
PRECISION=$(python -c "import torch; print('bf16' if torch.cuda.is_available() else 'fp32')")

echo "== 1. throughput ($PRESET, $PRECISION)"
for batch in 8 max; do
  for compiled in "" "--compile"; do
    name="throughput_b${batch}${compiled:+_compiled}"
    python "$HERE/train_throughput.py" --preset "$PRESET" --models "$MODELS" --steps "$STEPS" --warmup 2 \
      --precision "$PRECISION" --batch-size "$batch" --max-batch "$MAX_BATCH" $compiled --json "$OUT/$name.json" | tee "$OUT/$name.md"
  done
done

echo "== 2. torchrun, two processes"
GPUS=$(python -c "import torch; print(torch.cuda.device_count())")
torchrun --standalone --nproc_per_node=2 -m scvae train --preset tiny --out "$OUT/torchrun" --overwrite \
  --no-progress steps=20 val_every=10 save_every=10 2>&1 | tee "$OUT/torchrun.txt"
echo "torchrun: 2 ranks on $GPUS GPU(s)" >> "$OUT/torchrun.txt"

echo "== 3. $TRAIN_PRESET on $DATA, $TRAIN_STEPS steps, GAN objective"
OBJECTIVE=(disc_weight=0.8 "disc_layers=$DISC_LAYERS" "disc_start=$((TRAIN_STEPS / 2))" "precision=$PRECISION")
if [[ -n "${SCVAE_LPIPS_VGG:-}" && -n "${SCVAE_LPIPS_LIN:-}" ]]; then
  OBJECTIVE+=(lpips_weight=1.0 "lpips_vgg=$SCVAE_LPIPS_VGG" "lpips_lin=$SCVAE_LPIPS_LIN")
else
  echo "LPIPS skipped: set SCVAE_LPIPS_VGG and SCVAE_LPIPS_LIN to the local weights files" | tee "$OUT/lpips_skipped.txt"
fi
scvae train --preset "$TRAIN_PRESET" --data "$DATA" --out "$OUT/camvid" --overwrite --no-progress \
  --steps "$TRAIN_STEPS" "${OBJECTIVE[@]}" 2>&1 | tee "$OUT/camvid.txt"
echo "wrote $OUT"
