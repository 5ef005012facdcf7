#!/usr/bin/env bash
# The student run of docs/RESULTS.md "Student v4": data (generator v4), teacher filter, SFT on prompt v2, dev evaluations.
# Every stage is resumable: rerun the same command after a kill and it continues (same data order).
# Generator v4 data (the chains student v4 trained on) come from the code up to commit e5fdefb; generator v5
# (5ace67a, 5f3bda9) changed temporal programs and chains: `git worktree add ../v4 e5fdefb` to regenerate them.
#   bash scripts/train_student_v4.sh [WORK_DIR]      (default ../student_v4, outside the repository)
set -euo pipefail
cd "$(dirname "$0")/.."
W=${1:-../student_v4}
F=.venv/bin/frs
mkdir -p "$W/data" "$W/runs"
D=$W/data
$F data synth --out $D/dev_img  --split val  --n 160   --seed 23 --noise low --workers 2
$F data synth --out $D/dev_vid  --split val  --n 60    --seed 24 --noise low --video --workers 2
$F data synth --out $D/test_img --split test --n 360   --seed 25 --noise low --workers 2
$F data synth --out $D/test_vid --split test --n 160   --seed 26 --noise low --video --workers 2
$F data synth --out $D/train_img --split train --n 16000 --seed 21 --noise low --workers 2
$F data synth --out $D/train_vid --split train --n 5000  --seed 22 --noise low --video --workers 2
cat $D/train_img/train.jsonl $D/train_vid/train.jsonl > $D/train_all.jsonl
cat $D/dev_img/val.jsonl $D/dev_vid/val.jsonl > $D/dev_all.jsonl
cat $D/test_img/test.jsonl $D/test_vid/test.jsonl > $D/test_all.jsonl
{ head -70 $D/dev_img/val.jsonl; head -30 $D/dev_vid/val.jsonl; } > $D/dev100.jsonl
$F teacher --config configs/teacher_programmatic.yaml --items $D/train_all.jsonl --out $W/runs/teacher -q
$F teacher --config configs/teacher_programmatic.yaml --items $D/dev_all.jsonl --out $W/runs/teacher_dev \
    --set split=val -q
$F sft --config configs/sft_student_v4.yaml --set items=$D/train_all.jsonl --set chains=$W/runs/teacher/chains.jsonl \
    --set dev_items=$D/dev_all.jsonl --set dev_chains=$W/runs/teacher_dev/chains.jsonl --set out=$W/runs/sft-v4
# Dev curve: every checkpoint on dev100 (llama.cpp, greedy, the checkpoint's recorded prompt style).
for ckpt in $W/runs/sft-v4/checkpoint-*; do
    $F eval --benchmark synthetic --items $D/dev100.jsonl --reasoner base --adapter "$ckpt" \
        --out "$W/runs/eval/dev-$(basename "$ckpt")"
done
