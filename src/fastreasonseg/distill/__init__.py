"""Distillation (paper section "Distillation"): teacher chains, LoRA SFT and GRPO with joint rewards.

- :mod:`.teacher`: ``frs teacher``: chains from the programmatic or an LLM teacher, kept when IoU > 0.7.
- :mod:`.sft`: ``frs sft``: TRL SFTTrainer + LoRA, no loss on runtime-inserted ``<results>``.
- :mod:`.grpo`: ``frs rl``: TRL GRPOTrainer with multi-turn tool rollouts (``rollout_func`` + ``env_mask``).
- :mod:`.rewards` / :mod:`.judges`: R_format, R_accuracy, R_reasoning (LLM or offline judge).
- :mod:`.config`: typed configs with the paper's values beside the CPU defaults.
- :mod:`.export`: ``frs export-student``: the fp16 adapter + model card shipped as the embedded student.

Nothing heavy is imported here.
"""
