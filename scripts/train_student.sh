#!/usr/bin/env bash
# One student run (docs/RESULTS.md): synthetic data, programmatic-teacher filter, SFT, dev curve. Every stage resumes
# when rerun with the same arguments (same data, same order). Run nothing else on the cores while it trains: a second
# process, even niced, slows the 2-thread SFT step 3-5x.
#   bash scripts/train_student.sh NAME WORK_DIR CONFIG [KEY=VALUE ...]
# NAME names the run folder (WORK_DIR/runs/sft-NAME); CONFIG is the frs sft config. KEY=VALUE (defaults below):
#   TRAIN_SEEDS="21 22"  N_IMG=16000  N_VID=5000  VID_WEIGHTS=""   the training scenes (image seed, video seed)
#   VID_WEIGHTS is passed to `frs data synth --category-weights` for the video items (e.g. temporal=2).
#   ADAPTER=""   a PEFT adapter folder to warm-start from (overrides the config's `adapter`).
# Dev and test splits always use seeds 23-26 (dev 160 images + 60 videos, test 360 + 160, dev100 = 70 + 30), so
# every run is compared on the same items. The generator is the checked-out code: note its commit with the run.
set -euo pipefail
NAME=$1 W=$2 CONFIG=$3; shift 3
TRAIN_SEEDS="21 22" N_IMG=16000 N_VID=5000 VID_WEIGHTS="" ADAPTER=""
for kv in "$@"; do
    case ${kv%%=*} in TRAIN_SEEDS|N_IMG|N_VID|VID_WEIGHTS|ADAPTER) declare "$kv" ;; *) echo "unknown setting $kv" >&2; exit 2 ;; esac
done
read -r SEED_IMG SEED_VID <<< "$TRAIN_SEEDS"
cd "$(dirname "$0")/.."
F=.venv/bin/frs
mkdir -p "$W/data" "$W/runs"
D=$W/data
$F data synth --out $D/dev_img  --split val  --n 160   --seed 23 --noise low --workers 2
$F data synth --out $D/dev_vid  --split val  --n 60    --seed 24 --noise low --video --workers 2
$F data synth --out $D/test_img --split test --n 360   --seed 25 --noise low --workers 2
$F data synth --out $D/test_vid --split test --n 160   --seed 26 --noise low --video --workers 2
$F data synth --out $D/train_img --split train --n "$N_IMG" --seed "$SEED_IMG" --noise low --workers 2
$F data synth --out $D/train_vid --split train --n "$N_VID" --seed "$SEED_VID" --noise low --video --workers 2 \
    ${VID_WEIGHTS:+--category-weights "$VID_WEIGHTS"}
cat $D/train_img/train.jsonl $D/train_vid/train.jsonl > $D/train_all.jsonl
cat $D/dev_img/val.jsonl $D/dev_vid/val.jsonl > $D/dev_all.jsonl
cat $D/test_img/test.jsonl $D/test_vid/test.jsonl > $D/test_all.jsonl
{ head -70 $D/dev_img/val.jsonl; head -30 $D/dev_vid/val.jsonl; } > $D/dev100.jsonl
$F teacher --config configs/teacher_programmatic.yaml --items $D/train_all.jsonl --out $W/runs/teacher -q
$F teacher --config configs/teacher_programmatic.yaml --items $D/dev_all.jsonl --out $W/runs/teacher_dev \
    --set split=val -q
$F sft --config "$CONFIG" --set items=$D/train_all.jsonl --set chains=$W/runs/teacher/chains.jsonl \
    --set dev_items=$D/dev_all.jsonl --set dev_chains=$W/runs/teacher_dev/chains.jsonl --set out=$W/runs/sft-$NAME \
    ${ADAPTER:+--set adapter="$ADAPTER"}
# Dev curve: every checkpoint on dev100 (llama.cpp, greedy, adapter merged as the runtime loads it).
for ckpt in $W/runs/sft-$NAME/checkpoint-*; do
    $F eval --benchmark synthetic --items $D/dev100.jsonl --reasoner base --adapter "$ckpt" \
        --out "$W/runs/eval/dev-$(basename "$ckpt")"
done
