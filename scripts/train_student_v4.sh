#!/usr/bin/env bash
# The student run of docs/RESULTS.md "Student v4": data (generator v4), teacher filter, SFT on prompt v2, dev curve.
# Resumable: rerun the same command after a kill (same data order).
# Generator v4 data (the chains student v4 trained on) come from the code up to commit e5fdefb; generator v5
# (5ace67a, 5f3bda9) changed temporal programs and chains: `git worktree add ../v4 e5fdefb` to regenerate them.
#   bash scripts/train_student_v4.sh [WORK_DIR]      (default ../student_v4, outside the repository)
exec "$(dirname "$0")/train_student.sh" v4 "${1:-../student_v4}" configs/sft_student_v4.yaml \
    TRAIN_SEEDS="21 22" N_IMG=16000 N_VID=5000
