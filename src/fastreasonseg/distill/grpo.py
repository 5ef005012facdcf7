"""``frs rl``: GRPO with multi-turn tool rollouts, on TRL's GRPOTrainer.

Run::

    frs rl --items data/synth/train.jsonl --adapter runs/sft/adapter --out runs/rl          # SFT + RL
    frs rl --items data/synth/train.jsonl --out runs/rl_only                                # RL only
    frs rl --items ... --teacher-mode --model Qwen/Qwen3-8B                                 # train a teacher
    frs rl --config configs/rl_smollm2.yaml --set reward_weights.reasoning=0                # ablation

Reward (paper): ``R = R_format + R_accuracy + 0.5 * R_reasoning``
(:mod:`fastreasonseg.distill.rewards`; weights through TRL ``reward_weights``); teacher mode
uses format + accuracy only. KL to the reference (``beta``), group size
(``num_generations``), clipping (``epsilon``) and loss type are GRPOConfig settings.

Rollouts are multi-turn: TRL 1.16's ``rollout_func`` hook lets :class:`ToolRolloutFunc`
generate with the policy itself, pause at ``</plan>``, run the DT tools on the item's twin,
append the ``<results>`` block and resume, exactly the protocol of the inference engine.
It returns ``env_mask`` (1 = token the policy sampled, 0 = token the runtime inserted),
which TRL turns into its ``tool_mask`` and multiplies into the loss mask, so inserted
``<results>`` tokens get no policy gradient, no KL term and do not count in the loss
normalisation. After ``</answer>`` the runtime appends EOS (also ``env_mask`` 0).

Why a hand-written rollout loop and not :class:`~fastreasonseg.reasoning.engine.RolloutEngine`:
policy-gradient training needs the exact token ids the policy sampled and which of them it
sampled; the engine works on text through backends and re-tokenises the prefix on every
turn. The loop below reuses the engine's plan execution (:func:`execute_plan`) and the
protocol's ``results_block`` so the inserted text is byte-identical to inference, and it
samples the whole group of a prompt as one batch with ``model.generate`` (``stop_strings``).

A run with no learning signal (every group's rollouts earn equal rewards, so every advantage
is zero) is warned about during training and recorded in ``rl_stats.json``
(``learning_signal``): GRPO from the base model without SFT does exactly that here.

Departures from the paper: CPU-sized defaults (see :mod:`fastreasonseg.distill.config`); the
offline MiniLM judge stands in for GPT-4o unless ``judge=llm``. Sampling logprobs are not
returned (``logprobs=None``): on one CPU process the trainer recomputes old log-probs from the
same weights, so no vLLM-style importance correction is needed.
"""

from __future__ import annotations

import json
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from fastreasonseg.distill.config import RLRunConfig
from fastreasonseg.reasoning.protocol import STOP_STRINGS, Failure, last_plan, results_block

if TYPE_CHECKING:
    from fastreasonseg.twin.core import DigitalTwin


@dataclass
class RolloutSample:
    """One multi-turn rollout as tokens: ``env_mask[i]`` is 1 where the policy sampled ``completion_ids[i]``."""

    prompt_ids: list[int]
    completion_ids: list[int] = field(default_factory=list)
    env_mask: list[int] = field(default_factory=list)
    text: str = ""
    model_tokens: int = 0
    rounds: int = 0
    done: bool = False
    failures: list[Failure] = field(default_factory=list)

    def extend(self, ids: list[int], sampled: bool, text: str) -> None:
        self.completion_ids.extend(ids)
        self.env_mask.extend([1 if sampled else 0] * len(ids))
        self.text += text
        if sampled:
            self.model_tokens += len(ids)


def _split_turn(tokenizer: Any, new_ids: list[int], eos_ids: frozenset[int]) -> tuple[list[int], str, str]:
    """Cut a turn's generated ids at the first EOS or stop string.

    Returns ``(kept_ids, text, how)`` with ``how`` in ``eos``, ``stop``, ``length``. For
    ``stop`` the text ends exactly with the stop string; the last kept token may carry
    characters past it, which :func:`_advance` handles.
    """
    from fastreasonseg.reasoning.backends.local import find_stop

    longest = max(len(s) for s in STOP_STRINGS)
    text = ""
    for index, token in enumerate(new_ids):
        if token in eos_ids:
            return new_ids[:index], text, "eos"
        previous = len(text)
        text = tokenizer.decode(new_ids[: index + 1], skip_special_tokens=False)
        end = find_stop(text, STOP_STRINGS, previous - longest)
        if end >= 0:
            return new_ids[: index + 1], text[:end], "stop"
    return list(new_ids), text, "length"


def generate_tool_rollouts(model: Any, tokenizer: Any, prompt_ids: list[list[int]], twins: list[DigitalTwin], *,
                           temperature: float = 1.0, max_new_tokens: int = 320, max_new_tokens_per_turn: int = 192,
                           max_tool_rounds: int = 3, bf16: bool = False) -> list[RolloutSample]:
    """Sample one multi-turn rollout per prompt with the policy, running DT tools at every ``</plan>``.

    All unfinished rollouts advance together, one ``model.generate`` call per turn. ``bf16``
    samples under bf16 autocast, as the trainer computes its log-probs when ``bf16`` is set
    (prefill is ~3x faster on CPUs with AVX-512-BF16/AMX).
    """
    from contextlib import nullcontext

    import torch

    if len(prompt_ids) != len(twins):
        raise ValueError(f"{len(prompt_ids)} prompts but {len(twins)} twins")
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
    eos = getattr(model.generation_config, "eos_token_id", None)
    eos_ids = frozenset(int(i) for i in ((eos if isinstance(eos, (list, tuple)) else [eos]) if eos is not None else [])
                        ) | {int(tokenizer.eos_token_id)}
    samples = [RolloutSample(prompt_ids=list(p)) for p in prompt_ids]
    was_training = model.training
    model.eval()
    try:
        while active := [i for i, s in enumerate(samples) if not s.done]:
            budget = max(min(max_new_tokens_per_turn, max_new_tokens - samples[i].model_tokens) for i in active)
            sequences = [samples[i].prompt_ids + samples[i].completion_ids for i in active]
            width = max(len(s) for s in sequences)
            input_ids = torch.tensor([[pad] * (width - len(s)) + s for s in sequences], dtype=torch.long,
                                     device=model.device)
            attention = torch.tensor([[0] * (width - len(s)) + [1] * len(s) for s in sequences], dtype=torch.long,
                                     device=model.device)
            with torch.no_grad(), (torch.autocast("cpu", dtype=torch.bfloat16) if bf16 else nullcontext()):
                output = model.generate(input_ids=input_ids, attention_mask=attention, max_new_tokens=budget,
                                        do_sample=True, temperature=temperature, top_k=0, top_p=1.0,
                                        stop_strings=list(STOP_STRINGS), tokenizer=tokenizer, pad_token_id=pad,
                                        eos_token_id=sorted(eos_ids))
            for row, index in enumerate(active):
                _advance(samples[index], tokenizer, output[row, width:].tolist(), eos_ids, twins[index],
                         max_new_tokens=max_new_tokens, max_new_tokens_per_turn=max_new_tokens_per_turn,
                         max_tool_rounds=max_tool_rounds)
    finally:
        model.train(was_training)
    return samples


def _advance(sample: RolloutSample, tokenizer: Any, new_ids: list[int], eos_ids: frozenset[int], twin: DigitalTwin,
             *, max_new_tokens: int, max_new_tokens_per_turn: int, max_tool_rounds: int) -> None:
    """Append one turn's sampled tokens to ``sample`` and do what the runtime does after it (tools, EOS, stop)."""
    from fastreasonseg.reasoning.engine import error_results, execute_plan

    allowed = min(max_new_tokens_per_turn, max_new_tokens - sample.model_tokens)
    kept, text, how = _split_turn(tokenizer, new_ids[:allowed], eos_ids)
    if how == "stop" and tokenizer.decode(kept, skip_special_tokens=False) != text:
        # The token that completed the stop string carried more text: keep what precedes
        # it as sampled and re-encode the rest of the stop string as runtime text (mask 0).
        head = kept[:-1]
        head_text = tokenizer.decode(head, skip_special_tokens=False)
        sample.extend(head, True, head_text)
        tail = text[len(head_text):]
        sample.extend(tokenizer(tail, add_special_tokens=False)["input_ids"], False, tail)
    else:
        sample.extend(kept, True, text)
    if how == "eos":
        sample.extend([new_ids[len(kept)]], True, "")  # the policy sampled this EOS
        sample.failures.append(Failure("ended_without_answer", "the policy ended its turn before </answer>"))
        sample.done = True
    elif how == "length":
        sample.failures.append(Failure("token_budget_exhausted", f"turn stopped after {len(kept)} tokens"))
        sample.done = True
    elif sample.text.endswith("</answer>"):
        # The runtime stops at </answer> and closes the turn; EOS is not sampled, so mask 0.
        sample.extend([int(tokenizer.eos_token_id)], False, "")
        sample.done = True
    else:  # </plan>
        if sample.rounds >= max_tool_rounds:
            sample.failures.append(Failure("too_many_tool_rounds", f"plan {sample.rounds + 1} > {max_tool_rounds}"))
            sample.done = True
            return
        plan_text = last_plan(sample.text)
        results = execute_plan(twin, plan_text)[1] if plan_text is not None else error_results(
            "</plan> without a matching <plan>")
        block = results_block(results)
        sample.extend(tokenizer(block, add_special_tokens=False)["input_ids"], False, block)
        sample.rounds += 1
        if sample.model_tokens >= max_new_tokens:
            sample.failures.append(Failure("token_budget_exhausted", f"used all {max_new_tokens} new tokens"))
            sample.done = True


class ToolRolloutFunc:
    """TRL ``rollout_func``: multi-turn tool rollouts for the prompts of a batch, with ``env_mask``.

    ``twin_by_prompt`` maps the last user message of each prompt (scene text + request) to
    the twin JSON the tools run on; it is built with the dataset (:func:`build_rl_dataset`).
    """

    def __init__(self, twin_by_prompt: dict[str, str], *, temperature: float, max_new_tokens: int,
                 max_new_tokens_per_turn: int, max_tool_rounds: int, bf16: bool = False):
        self.twin_by_prompt = twin_by_prompt
        self.bf16 = bf16
        self.temperature = temperature
        self.max_new_tokens = max_new_tokens
        self.max_new_tokens_per_turn = max_new_tokens_per_turn
        self.max_tool_rounds = max_tool_rounds

    def __call__(self, prompts: list[Any], trainer: Any) -> dict[str, Any]:
        from fastreasonseg.data.items import parse_twin
        from fastreasonseg.distill.models import render_prompt

        tokenizer = trainer.processing_class
        model = trainer.accelerator.unwrap_model(trainer.model)
        twins, prompt_ids = [], []
        for prompt in prompts:
            if not isinstance(prompt, list) or not prompt or not isinstance(prompt[-1], dict):
                raise ValueError("ToolRolloutFunc needs conversational prompts (lists of chat messages)")
            key = prompt[-1].get("content", "")
            if key not in self.twin_by_prompt:
                raise KeyError("a prompt's scene is not in the rollout function's twin table; build the dataset "
                               "and the rollout function together with build_rl_dataset")
            twins.append(parse_twin(self.twin_by_prompt[key]))
            prompt_ids.append(tokenizer(render_prompt(tokenizer, prompt), add_special_tokens=False)["input_ids"])
        samples = generate_tool_rollouts(model, tokenizer, prompt_ids, twins, temperature=self.temperature,
                                         max_new_tokens=self.max_new_tokens,
                                         max_new_tokens_per_turn=self.max_new_tokens_per_turn,
                                         max_tool_rounds=self.max_tool_rounds, bf16=self.bf16)
        return {"prompt_ids": [s.prompt_ids for s in samples], "completion_ids": [s.completion_ids for s in samples],
                "logprobs": None, "env_mask": [s.env_mask for s in samples],
                "rollout_failures": [[f.code for f in s.failures] for s in samples]}


def build_rl_dataset(items: Any, tokenizer: Any, *, few_shot: bool = False, twin_max_tokens: int | None = 1200,
                     limit: int | None = None, prompt: str = "v1") -> tuple[Any, dict[str, str]]:
    """(``datasets.Dataset`` of prompts + reward columns, prompt -> twin JSON table for the rollout function)."""
    from datasets import Dataset

    from fastreasonseg.data.items import as_item
    from fastreasonseg.distill.models import build_messages

    rows, table = [], {}
    conflicts = 0
    for item in items:
        if limit is not None and len(rows) >= limit:
            break
        view = as_item(item)
        messages = build_messages(view.twin, view.query, tokenizer, few_shot=few_shot, twin_max_tokens=twin_max_tokens,
                                  prompt=prompt)
        twin_json = view.twin.to_json()
        known = table.setdefault(messages[-1]["content"], twin_json)
        if known != twin_json:
            # Same scene text and query but a different twin (e.g. two noise draws whose masks
            # differ below the text's precision): tools would run on the first one.
            conflicts += 1
        rows.append({"prompt": messages, "id": view.id, "query": view.query, "twin_json": twin_json,
                     "gt_masks_json": json.dumps([{"frame": f, "mask": m} for f, m in view.gt_masks.items()])
                     if view.gt_masks is not None else "",
                     "gt_twin_json": view.gt_twin.to_json() if view.gt_twin is not None else "",
                     "answer_ids": view.answer_ids, "teacher": view.teacher or "",
                     "category": view.keys.get("category", ""), "level": view.keys.get("level", "")})
    if not rows:
        raise ValueError("no items for RL")
    if conflicts:
        warnings.warn(f"{conflicts} RL prompts share their text with another item's prompt but not its twin; "
                      "their tool calls run on the first twin", stacklevel=2)
    return Dataset.from_list(rows), table


def make_rewards(config: RLRunConfig) -> tuple[list[Any], list[float]]:
    """The reward functions and weights of ``config`` (format, accuracy, reasoning with its judge)."""
    from fastreasonseg.distill.judges import judge_from_config
    from fastreasonseg.distill.rewards import AccuracyReward, ReasoningReward, format_reward

    funcs, weights = [], []
    for name, weight in config.active_rewards:
        if name == "format":
            funcs.append(format_reward)
        elif name == "accuracy":
            funcs.append(AccuracyReward(config.accuracy_threshold, continuous=config.accuracy_continuous))
        else:
            funcs.append(ReasoningReward(judge_from_config(config.judge, **config.judge_options)))
        weights.append(weight)
    return funcs, weights


def build_rl_trainer(config: RLRunConfig, *, items: Any | None = None,
                     reward_funcs: list[tuple[Any, float]] | None = None, report_to: str = "none") -> Any:
    """A ready GRPOTrainer for ``config`` (policy, dataset, rewards, tool rollout function).

    ``reward_funcs`` replaces the configured rewards with ``(function, weight)`` pairs.
    """
    import torch
    from trl import GRPOConfig, GRPOTrainer

    from fastreasonseg.data.items import load_items
    from fastreasonseg.distill.models import check_bf16, load_policy, lora_config

    check_bf16(config.bf16)
    if config.threads:
        torch.set_num_threads(config.threads)
    model, tokenizer = load_policy(config.model, config.gguf_file, config.dtype, adapter=config.adapter)
    source = load_items(config.items, config.split) if items is None else items
    if config.chains:
        source = _with_kept_chains(source, config.chains)
    dataset, table = build_rl_dataset(source, tokenizer, few_shot=config.few_shot, prompt=rl_prompt_style(config),
                                      twin_max_tokens=config.twin_max_tokens, limit=config.limit)
    if reward_funcs is None:
        funcs, weights = make_rewards(config)
    else:
        funcs, weights = [f for f, _ in reward_funcs], [float(w) for _, w in reward_funcs]
    args = GRPOConfig(
        output_dir=str(config.out), max_steps=config.max_steps,
        per_device_train_batch_size=config.prompts_per_step * config.num_generations,
        num_generations=config.num_generations, gradient_accumulation_steps=config.gradient_accumulation,
        learning_rate=config.learning_rate, weight_decay=config.weight_decay, lr_scheduler_type=config.lr_scheduler,
        warmup_steps=config.warmup_ratio, beta=config.beta, epsilon=config.epsilon, loss_type=config.loss_type,
        temperature=config.temperature, max_completion_length=config.max_new_tokens * 4,
        reward_weights=weights, logging_steps=config.logging_steps, save_steps=config.save_steps,
        save_total_limit=config.save_total_limit, seed=config.seed, use_cpu=True, bf16=config.bf16, fp16=False,
        report_to=report_to, disable_tqdm=False, gradient_checkpointing=False, log_completions=False,
    )
    rollout = ToolRolloutFunc(table, temperature=config.temperature, max_new_tokens=config.max_new_tokens,
                              max_new_tokens_per_turn=config.max_new_tokens_per_turn,
                              max_tool_rounds=config.max_tool_rounds, bf16=config.bf16)
    peft = None if config.adapter else lora_config(config.lora_r, config.lora_alpha, config.lora_dropout,
                                                    config.lora_targets)
    return GRPOTrainer(model=model, reward_funcs=funcs, args=args, train_dataset=dataset, processing_class=tokenizer,
                       peft_config=peft, rollout_func=rollout)


NO_SIGNAL_PATIENCE = 3


def _is_flat(logs: dict[str, Any]) -> bool:
    """True for a logged GRPO step in which every group's rewards were equal (zero advantage, zero gradient)."""
    return float(logs.get("frac_reward_zero_std", 0.0)) >= 1.0 or float(logs.get("reward_std", 1.0)) == 0.0


def learning_signal_report(log_history: list[dict[str, Any]]) -> dict[str, Any]:
    """How many logged GRPO steps had a learning signal, and a warning when none did.

    GRPO's advantage is the reward minus its group mean, so a group whose rollouts all earn the
    same reward contributes nothing. TRL logs ``frac_reward_zero_std`` (share of such groups) and
    ``reward_std``; a step where every group is flat has zero gradient. This happens when the
    policy never writes the protocol (every rollout gets R_format = -0.5 and nothing else): RL
    from the base model without SFT, measured in docs/RESULTS.md.
    """
    steps = [h for h in log_history if "reward" in h]
    flat = [h for h in steps if _is_flat(h)]
    report: dict[str, Any] = {"logged_steps": len(steps), "steps_without_signal": len(flat), "warning": None}
    if steps and len(flat) == len(steps):
        formats = [float(h["rewards/format_reward/mean"]) for h in steps if "rewards/format_reward/mean" in h]
        why = " (R_format stayed at -0.5: the policy never wrote the protocol's tags)" if formats and max(formats) <= -0.5 else ""
        report["warning"] = (f"GRPO had no learning signal in all {len(steps)} logged step(s): every rollout of every group "
                             f"earned the same reward{why}, so the advantages and the gradient were zero. Start from an "
                             "SFT adapter (--adapter runs/sft/adapter) or use the few-shot prompt (--set few_shot=true).")
    return report


def _signal_callback() -> Any:
    """A TrainerCallback that warns once after NO_SIGNAL_PATIENCE consecutive flat steps (runs are long on CPU)."""
    from transformers import TrainerCallback

    class NoSignalWarning(TrainerCallback):
        def __init__(self) -> None:
            self.flat_run = 0
            self.warned = False

        def on_log(self, args: Any, state: Any, control: Any, logs: dict[str, Any] | None = None, **kwargs: Any) -> None:
            if not logs or "reward" not in logs:
                return
            self.flat_run = self.flat_run + 1 if _is_flat(logs) else 0
            if self.flat_run >= NO_SIGNAL_PATIENCE and not self.warned:
                self.warned = True
                warnings.warn(f"GRPO: {self.flat_run} consecutive steps without learning signal (all rewards equal "
                              "within every group); the gradient is zero. See learning_signal_report.", stacklevel=2)

    return NoSignalWarning()


def rl_prompt_style(config: RLRunConfig) -> str:
    """The prompt style GRPO trains on: the configured one, else the one its starting adapter was trained on."""
    from fastreasonseg.reasoning.prompt import adapter_prompt_style

    return config.prompt or adapter_prompt_style(config.adapter)


def run_rl(config: RLRunConfig, *, items: Any | None = None, report_to: str = "none") -> Path:
    """Train with GRPO; returns the adapter folder ``config.out/adapter``. Rerunning resumes from the last checkpoint."""
    from fastreasonseg.distill.sft import last_checkpoint
    from fastreasonseg.reasoning.prompt import write_adapter_meta

    out = Path(config.out)
    config.save(out)
    trainer = build_rl_trainer(config, items=items, report_to=report_to)
    trainer.add_callback(_signal_callback())
    resume = last_checkpoint(out)
    if resume:
        print(f"resuming from {resume}", flush=True)
    started = time.perf_counter()
    result = trainer.train(resume_from_checkpoint=resume)
    adapter = out / "adapter"
    _save_default_adapter(trainer.model, adapter)
    trainer.processing_class.save_pretrained(adapter)
    config.save(adapter)
    write_adapter_meta(adapter, rl_prompt_style(config))
    stats = {"train_seconds": round(time.perf_counter() - started, 1), "train_loss": result.training_loss,
             "global_step": trainer.state.global_step, "resumed_from": resume, "prompts": len(trainer.train_dataset),
             "log_history": trainer.state.log_history[-20:]}
    stats["learning_signal"] = signal = learning_signal_report(trainer.state.log_history)
    if signal["warning"]:
        print(f"warning: {signal['warning']}", flush=True)
    (out / "rl_stats.json").write_text(json.dumps(stats, indent=2, default=str), encoding="utf-8")
    return adapter


def _save_default_adapter(model: Any, folder: Path) -> None:
    """Save only the trained ``default`` adapter (TRL may have added a frozen ``ref`` copy for the KL term)."""
    model.save_pretrained(folder, selected_adapters=["default"])


def _with_kept_chains(items: Any, chains_path: str) -> Any:
    """Items whose ``teacher`` chain is replaced by a kept chain of ``frs teacher`` (for an LLM teacher's chains)."""
    from fastreasonseg.data.items import as_item
    from fastreasonseg.distill.sft import kept_chains

    chains = kept_chains(chains_path)
    for item in items:
        view = as_item(item)
        if view.id in chains:
            view.teacher = chains[view.id][0]
        yield view
