#!/usr/bin/env bash
# Reproduce docs/RESULTS.md: data, programmatic teacher, SFT (three sessions), GRPO runs, evaluations, tables.
#   bash scripts/reproduce_results.sh [WORK_DIR]        (default: ./results_work; ~5 h on a 2-core CPU)
# Every stage resumes when rerun (synth, teacher, sft and eval all skip finished work).
set -euo pipefail
W=${1:-results_work}
mkdir -p "$W/data" "$W/runs"
D=$W/data R=$W/runs

# --- data: noisy synthetic twins (noise low = 0.3), disjoint train/test scenes -----------------
frs data synth --out "$D/img" --split train --n 2000 --seed 1 --image --noise low
frs data synth --out "$D/vid" --split train --n 800 --seed 1 --video --noise low
python - "$D" <<'EOF'
import random, sys
d = sys.argv[1]
rows = open(f"{d}/img/train.jsonl").read().splitlines() + open(f"{d}/vid/train.jsonl").read().splitlines()
random.Random(0).shuffle(rows)
open(f"{d}/train_mix.jsonl", "w").write("\n".join(rows) + "\n")
open(f"{d}/sft2_items.jsonl", "w").write("\n".join(rows[500:]) + "\n")  # not seen by the first SFT session
open(f"{d}/rl_only.jsonl", "w").write("\n".join(rows[1100:]) + "\n")    # seen by neither SFT session
open(f"{d}/sft3_items.jsonl", "w").write("\n".join(rows[2200:]) + "\n")  # third SFT session
EOF
# test: 70 image items, 10 video items, 20 temporal video items (another seed: ids stay unique)
printf 'categories: [temporal]\n' > "$D/temporal.yaml"
frs data synth --out "$D/t_img" --split test --n 70 --seed 1 --image --noise low
frs data synth --out "$D/t_vid" --split test --n 10 --seed 1 --video --noise low
frs data synth --config "$D/temporal.yaml" --out "$D/t_tmp" --split test --n 20 --seed 2 --video --noise low
cat "$D/t_img/test.jsonl" "$D/t_vid/test.jsonl" "$D/t_tmp/test.jsonl" > "$D/test100.jsonl"

# --- teacher: programmatic chains, kept when IoU > 0.7 -----------------------------------------
frs teacher --items "$D/train_mix.jsonl" --out "$R/teacher" --kind programmatic

# --- SFT: session 1 (360 chains), session 2 continues on 400 new chains, session 3 on 320 more --
frs sft --config configs/sft_smollm2.yaml --items "$D/train_mix.jsonl" --chains "$R/teacher/chains.jsonl" \
    --out "$R/sft" --set limit=360 --set epochs=1 --set threads=2 --set save_steps=5 --set bf16=true \
    --set batch_size=1 --set gradient_accumulation=8
frs sft --config configs/sft_smollm2.yaml --items "$D/sft2_items.jsonl" --chains "$R/teacher/chains.jsonl" \
    --out "$R/sft2" --set adapter="$R/sft/adapter" --set limit=400 --set epochs=1 --set threads=2 \
    --set save_steps=10 --set bf16=true --set batch_size=1 --set gradient_accumulation=8 --set learning_rate=3.0e-4
frs sft --config configs/sft_smollm2.yaml --items "$D/sft3_items.jsonl" --chains "$R/teacher/chains.jsonl" \
    --out "$R/sft3" --set adapter="$R/sft2/adapter" --set limit=320 --set epochs=1 --set threads=2 \
    --set save_steps=10 --set bf16=true --set batch_size=1 --set gradient_accumulation=8 --set learning_rate=3.0e-4

# --- GRPO: 10 steps from the SFT 2 adapter on prompts neither SFT session saw -----------------
RL="frs rl --config configs/rl_smollm2.yaml --items $D/rl_only.jsonl --max-steps 10 --set chains=$R/teacher/chains.jsonl --set bf16=true --set save_steps=2 --set threads=2"
$RL --adapter "$R/sft2/adapter" --out "$R/rl2"
# ablations (paper Table 5 style): RL without SFT, and SFT + RL with one reward removed
$RL --out "$R/rl_only" --set adapter=null
$RL --adapter "$R/sft2/adapter" --out "$R/rl_noreason" --set reward_weights.reasoning=0
# (not run for docs/RESULTS.md, CPU time: $RL --adapter "$R/sft2/adapter" --out "$R/rl_noformat" --set reward_weights.format=0)

# --- evaluation on the same 100 test items ------------------------------------------------------
E="frs eval --benchmark synthetic --items $D/test100.jsonl --threads 2"
$E --reasoner chance --out "$R/eval_chance"
$E --reasoner programmatic --out "$R/eval_teacher"
$E --reasoner base --out "$R/eval_base"
$E --reasoner base --adapter "$R/sft/adapter" --out "$R/eval_sft"
$E --reasoner base --adapter "$R/sft2/adapter" --out "$R/eval_sft2"
$E --reasoner base --adapter "$R/sft3/adapter" --out "$R/eval_sft3"
$E --reasoner base --adapter "$R/sft2/adapter" --max-tool-rounds 0 --out "$R/eval_sft2_notools"
$E --reasoner base --adapter "$R/rl2/adapter" --out "$R/eval_rl2"
for r in rl_only rl_noreason; do
    $E --reasoner base --adapter "$R/$r/adapter" --out "$R/eval_$r"
done

frs eval-compare "base few-shot=$R/eval_base" "chance=$R/eval_chance" "SFT 360=$R/eval_sft" \
    "SFT 360+400=$R/eval_sft2" "SFT 360+400+320=$R/eval_sft3" "SFT 360+400, no tools=$R/eval_sft2_notools" \
    "RL only (GRPO 10)=$R/eval_rl_only" "SFT 360+400 + GRPO 10=$R/eval_rl2" \
    "... no reasoning reward=$R/eval_rl_noreason" \
    "programmatic teacher=$R/eval_teacher" --out "$R/table.md"
