#!/usr/bin/env bash
# Student v5 (docs/RESULTS.md): generator-v5 data on fresh scenes (train seeds 31/32, 16,000 image + 8,000 video items,
# temporal 2x among videos), teacher filter, SFT warm-started from student v4 step 720 (configs/sft_student_v5.yaml),
# dev curve. Resumable: rerun the same command after a kill (same data order).
#   bash scripts/train_student_v5.sh [WORK_DIR]      (default ../student_v5, outside the repository)
# The warm start, student v4 step 720, was the embedded default until v5 replaced it: it is taken from commit 64d224e.
# On a machine that lost WORK_DIR, continue from the shipped v5 milestone instead of step 0:
#   add `--set resume_from=src/fastreasonseg/reasoning/default_adapter` (see frs sft) by running the frs sft line by hand.
set -euo pipefail
cd "$(dirname "$0")/.."
W=${1:-../student_v5}
mkdir -p "$W"
if [ ! -f "$W/warm_start_v4_720/adapter_model.safetensors" ]; then
    mkdir -p "$W/warm_start_v4_720"
    git archive 64d224e src/fastreasonseg/reasoning/default_adapter | tar -x -C "$W/warm_start_v4_720" --strip-components=4
fi
exec scripts/train_student.sh v5 "$W" configs/sft_student_v5.yaml \
    TRAIN_SEEDS="31 32" N_IMG=16000 N_VID=8000 VID_WEIGHTS=temporal=2 ADAPTER="$W/warm_start_v4_720"
