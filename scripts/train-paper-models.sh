#!/usr/bin/env bash
# Train the paper models with the exact commands recorded in weights.toml, resumably:
#   nohup scripts/train-paper-models.sh arcnn-plus galteri-mse galteri-gan dequantizernet-pretrain dequantizernet > runs/queue-a.log 2>&1 &
#   nohup scripts/train-paper-models.sh ced galteri-ssim hourglass > runs/queue-b.log 2>&1 &
# Two queues of one thread each use two cores better than one queue of two threads. A finished
# run (runs/NAME/model.safetensors) is skipped; an interrupted one continues from runs/NAME/last.pt.
# galteri-gan starts from galteri-mse's weights and dequantizernet from dequantizernet-pretrain's, so each
# goes after its starting point in the same queue.
set -euo pipefail
mkdir -p runs
for name in "$@"; do
  [ -f "runs/$name/model.safetensors" ] && continue
  dequant train --config "configs/$name.toml" --data ../shared/datasets/train --val ../shared/datasets/val \
    --out "runs/$name" --set threads=1 --resume >> "runs/$name.log" 2>&1
done
