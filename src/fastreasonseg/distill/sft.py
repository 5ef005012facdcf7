"""``frs sft``: LoRA supervised fine-tuning of the student on kept teacher chains (TRL SFTTrainer + PEFT).

Run::

    frs sft --items data/synth/train.jsonl --chains runs/teacher/chains.jsonl --out runs/sft
    frs sft --config configs/sft_smollm2.yaml --set epochs=1 --set limit=200

Each example is the runtime's prompt (system + twin + query, :func:`build_messages`)
followed by the teacher's rollout and EOS, pre-tokenised into ``input_ids`` and
``assistant_masks`` that TRL folds into the labels (``-100`` where the mask is 0):

- 0 on the prompt;
- 0 on every runtime-inserted ``\\n<results>...</results>\\n`` span
  (:func:`fastreasonseg.reasoning.protocol.results_spans`): the model must learn to call
  tools, not to imagine their output;
- 1 on ``<reason>``, ``<plan>`` and ``<answer>`` text and on the final EOS.

The text is tokenised in one piece, exactly as the inference backend tokenises a prompt
plus partial rollout, and a token is trained only if its characters lie entirely inside
the model-written part (a token straddling a results boundary gets 0, never a gradient
from inserted text). Examples longer than ``max_length`` are dropped and counted, not
truncated, so no example loses its answer.

Training is resumable: rerunning with the same ``out`` continues from the last
``checkpoint-*`` (HF Trainer ``resume_from_checkpoint``). On a new machine, where ``out`` is
gone, ``resume_from`` names a milestone: an adapter folder that carries the run's
``trainer_state.json`` (``out/adapter`` and ``frs export-student`` exports do). It is copied
into ``out/checkpoint-<step>`` and the Trainer resumes there: same step, same data order
(the seeded sampler skips the batches already trained); only the optimizer moments and the
warm-up restart when the milestone has no ``optimizer.pt`` (a committed milestone keeps the
adapter alone, ~10 MB, not the 4x larger optimizer state). Outputs: ``out/adapter`` (the
LoRA adapter), ``out/resolved_config.yaml``, ``out/sft_stats.json``, and
``out/examples-<key>.json``, the tokenised examples (building them for 20,000 chains takes
minutes; a resumed run reads them back). The key hashes the data files (path, size, mtime),
the tokenizer, the prompt settings and the source of the code that builds a prompt, so a
change to any of them builds afresh instead of training on stale examples.

The loss projects only the trained positions through the LM head (``logits_to_keep`` as a
boolean position mask, a transformers forward argument): TRL's fused LM head scores *every*
position on devices without Triton, in float32 tiles with entropy and top-1 bookkeeping,
which took a third of each CPU training step here (py-spy, SmolLM2-135M, bf16 autocast).
The loss is TRL's: summed token NLL over ``num_items_in_batch``.

Departures from the paper: CPU-sized defaults (see :mod:`fastreasonseg.distill.config`);
the paper does not say whether its SFT masks tool results; we do, as the issue requires.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from fastreasonseg.distill.config import SFTRunConfig
from fastreasonseg.distill.models import build_messages, render_prompt
from fastreasonseg.reasoning.prompt import write_adapter_meta
from fastreasonseg.reasoning.protocol import results_spans


@dataclass
class TokenizedChain:
    """``assistant_masks[i]`` is 1 where ``input_ids[i]`` is trained; ``results_tokens`` counts masked inserted tokens."""

    input_ids: list[int]
    assistant_masks: list[int]
    results_tokens: int = 0

    def to_dict(self) -> dict[str, list[int]]:
        return {"input_ids": self.input_ids, "assistant_masks": self.assistant_masks}


def tokenize_chain(tokenizer: Any, messages: list[dict[str, str]], rollout: str) -> TokenizedChain:
    """Prompt + rollout + EOS as token ids, with the loss mask described in the module docstring."""
    prompt = render_prompt(tokenizer, messages)
    text = prompt + rollout
    encoded = tokenizer(text, add_special_tokens=False, return_offsets_mapping=True)
    ids = list(encoded["input_ids"])
    offsets = encoded["offset_mapping"]
    start = len(prompt)
    excluded = [(a + start, b + start) for a, b in results_spans(rollout)]
    mask = []
    results_tokens = 0
    for token_start, token_end in offsets:
        trainable = token_start >= start and token_end > token_start
        if trainable and any(token_start < b and token_end > a for a, b in excluded):
            trainable = False
            results_tokens += 1
        mask.append(int(trainable))
    ids.append(tokenizer.eos_token_id)
    mask.append(1)
    return TokenizedChain(input_ids=ids, assistant_masks=mask, results_tokens=results_tokens)


@dataclass
class SFTData:
    examples: list[dict[str, list[int]]]
    stats: dict[str, Any] = field(default_factory=dict)


def kept_chains(path: str | Path) -> dict[str, list[str]]:
    """item id -> kept chain texts from a ``frs teacher`` output file."""
    from fastreasonseg.distill.jsonl import read_jsonl

    chains: dict[str, list[str]] = {}
    for record in read_jsonl(path):
        if record.get("kept") and isinstance(record.get("chain"), str):
            chains.setdefault(str(record["item_id"]), []).append(record["chain"])
    return chains


def build_sft_examples(items: Iterable[Any], chains: dict[str, list[str]], tokenizer: Any, *, max_length: int,
                       few_shot: bool = False, twin_max_tokens: int | None = 1200,
                       limit: int | None = None, prompt: str = "v1") -> SFTData:
    """Tokenised SFT examples for every kept chain of ``items``; stats count what was used and dropped."""
    from fastreasonseg.data.items import as_item

    examples: list[dict[str, list[int]]] = []
    stats = {"items_with_chains": 0, "examples": 0, "dropped_too_long": 0, "max_tokens": 0, "trained_tokens": 0,
             "masked_results_tokens": 0}
    for item in items:
        view = as_item(item)
        texts = chains.get(view.id)
        if not texts:
            continue
        if limit is not None and stats["items_with_chains"] >= limit:
            break
        stats["items_with_chains"] += 1
        messages = build_messages(view.twin, view.query, tokenizer, few_shot=few_shot, twin_max_tokens=twin_max_tokens,
                                  prompt=prompt)
        for text in texts:
            chain = tokenize_chain(tokenizer, messages, text)
            if len(chain.input_ids) > max_length:
                stats["dropped_too_long"] += 1
                continue
            stats["max_tokens"] = max(stats["max_tokens"], len(chain.input_ids))
            stats["trained_tokens"] += sum(chain.assistant_masks)
            stats["masked_results_tokens"] += chain.results_tokens
            examples.append(chain.to_dict())
    stats["examples"] = len(examples)
    return SFTData(examples=examples, stats=stats)


def _examples_key(config: SFTRunConfig, files: list[str | Path]) -> str:
    """The cache key of the tokenised examples (module docstring); the model settings name the tokenizer."""
    import hashlib

    from fastreasonseg.reasoning import prompt as prompt_module
    from fastreasonseg.twin import serialize as serialize_module

    parts: dict[str, Any] = {"files": [], "code": [],
                             "settings": [config.model, config.gguf_file, config.prompt, config.max_length,
                                          config.few_shot, config.twin_max_tokens, config.limit]}
    for file in files:
        stat = Path(file).stat()
        parts["files"].append([str(Path(file).resolve()), stat.st_size, stat.st_mtime_ns])
    for source in (prompt_module.__file__, serialize_module.__file__, __file__):
        parts["code"].append(hashlib.sha256(Path(source).read_bytes()).hexdigest())
    return hashlib.sha256(json.dumps(parts, sort_keys=True, default=str).encode()).hexdigest()[:16]


def cached_examples(path: Path, build: Any) -> SFTData:
    """The examples stored at ``path``, or ``build()``'s, stored there atomically for the next run."""
    from fastreasonseg.io import atomic_path

    if path.is_file():
        try:
            stored = json.loads(path.read_text(encoding="utf-8"))
            return SFTData(examples=stored["examples"], stats={**stored["stats"], "examples_cache": "read"})
        except (OSError, ValueError, KeyError, TypeError):
            pass  # a damaged cache is rebuilt, never trusted
    data = build()
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(path) as tmp:
        tmp.write_text(json.dumps({"stats": data.stats, "examples": data.examples}), encoding="utf-8")
    data.stats["examples_cache"] = "written"
    return data


def last_checkpoint(folder: str | Path) -> str | None:
    """The newest ``checkpoint-N`` folder under ``folder`` (what ``resume_from_checkpoint`` needs), or None."""
    folder = Path(folder)
    if not folder.is_dir():
        return None
    steps = []
    for path in folder.glob("checkpoint-*"):
        suffix = path.name.split("-", 1)[1]
        if path.is_dir() and suffix.isdigit() and (path / "trainer_state.json").is_file():
            steps.append((int(suffix), path))
    return str(max(steps)[1]) if steps else None


MILESTONE_FILES = ("adapter_config.json", "adapter_model.safetensors", "trainer_state.json", "fastreasonseg.json",
                   "optimizer.pt", "scheduler.pt", "rng_state.pth")


def seed_from_milestone(milestone: str | Path, out: str | Path) -> str:
    """Copy a milestone's adapter and trainer state into ``out/checkpoint-<step>``; returns that folder."""
    import shutil

    from fastreasonseg.errors import FrsError

    milestone = Path(milestone)
    state_path = milestone / "trainer_state.json"
    if not (milestone / "adapter_model.safetensors").is_file() or not state_path.is_file():
        raise FrsError(f"resume_from={str(milestone)!r} is not a milestone: it needs adapter_model.safetensors and "
                       "trainer_state.json (out/adapter of an `frs sft` run or an `frs export-student` folder)")
    try:
        step = int(json.loads(state_path.read_text(encoding="utf-8"))["global_step"])
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise FrsError(f"{state_path} has no readable global_step: {exc}") from None
    folder = Path(out) / f"checkpoint-{step}"
    folder.mkdir(parents=True, exist_ok=True)
    for name in MILESTONE_FILES:
        if (milestone / name).is_file():
            shutil.copyfile(milestone / name, folder / name)
    return str(folder)


def build_sft_trainer(config: SFTRunConfig, *, items: Iterable[Any] | None = None,
                      report_to: str = "none") -> tuple[Any, dict[str, Any]]:
    """(SFTTrainer with LoRA on the tokenised chains, data stats) for ``config``."""
    import torch
    from datasets import Dataset
    from trl import SFTConfig

    from fastreasonseg.data.items import load_items
    from fastreasonseg.distill.models import check_bf16, load_policy, lora_config
    from fastreasonseg.errors import FrsError

    check_bf16(config.bf16)
    if config.threads:
        torch.set_num_threads(config.threads)
    # The data first: a missing or empty file must be said before minutes of model loading.
    if items is None and not Path(config.items).exists():
        load_items(config.items)  # raises the one "does not exist" message
    chains = kept_chains(config.chains)
    if not chains:
        raise FrsError(f"no kept chains in {config.chains}; run `frs teacher` first (or lower its iou_threshold)")
    cache = None
    if items is None:  # items from a file: the tokenised examples are cached under out/
        cache = Path(config.out) / f"examples-{_examples_key(config, [config.items, config.chains])}.json"
    source = items if items is not None else (None if cache.is_file() else load_items(config.items))
    # A given adapter is loaded trainable and trained further (its own LoRA shape wins over lora_*).
    model, tokenizer = load_policy(config.model, config.gguf_file, config.dtype, adapter=config.adapter)

    def build() -> SFTData:
        return build_sft_examples(source if source is not None else load_items(config.items), chains, tokenizer,
                                  max_length=config.max_length, few_shot=config.few_shot,
                                  twin_max_tokens=config.twin_max_tokens, limit=config.limit, prompt=config.prompt)

    data = build() if cache is None else cached_examples(cache, build)
    if not data.examples:
        raise FrsError(f"no SFT examples: {data.stats}. Check that the chains' item ids are in {config.items} "
                       f"and that max_length={config.max_length} fits the prompts")
    dev = None
    if config.dev_items is not None:
        dev = build_sft_examples(load_items(config.dev_items), kept_chains(config.dev_chains), tokenizer,
                                 max_length=config.max_length, few_shot=config.few_shot,
                                 twin_max_tokens=config.twin_max_tokens, prompt=config.prompt)
        if not dev.examples:
            raise FrsError(f"no dev examples from {config.dev_items} with chains {config.dev_chains}")
        data.stats["dev_examples"] = len(dev.examples)
    args = SFTConfig(
        output_dir=str(config.out), num_train_epochs=config.epochs, max_steps=config.max_steps,
        per_device_train_batch_size=config.batch_size, gradient_accumulation_steps=config.gradient_accumulation,
        learning_rate=config.learning_rate, weight_decay=config.weight_decay, warmup_steps=config.warmup_ratio,
        lr_scheduler_type=config.lr_scheduler, logging_steps=config.logging_steps, save_steps=config.save_steps,
        save_total_limit=config.save_total_limit, seed=config.seed, max_length=config.max_length,
        use_cpu=True, bf16=config.bf16, fp16=False, report_to=report_to, disable_tqdm=False, gradient_checkpointing=False,
        train_sampling_strategy=config.sampling,
        eval_strategy="steps" if dev is not None else "no", eval_steps=(config.eval_steps or config.save_steps) if dev is not None else None,
        per_device_eval_batch_size=config.batch_size,
        prediction_loss_only=True,  # the dev loss only: collecting logits would hold vocab x tokens floats per example
    )
    trainer = student_trainer_class()(model=model, args=args, train_dataset=Dataset.from_list(data.examples),
                         eval_dataset=Dataset.from_list(dev.examples) if dev is not None else None,
                         callbacks=[adapter_meta_callback(config.prompt)],
                         processing_class=tokenizer,
                         peft_config=None if config.adapter else lora_config(config.lora_r, config.lora_alpha,
                                                                             config.lora_dropout, config.lora_targets))
    return trainer, data.stats


def trained_positions_loss(model: Any, inputs: dict[str, Any], num_items_in_batch: Any = None) -> tuple[Any, Any, Any]:
    """(loss, correct next-token predictions, trained tokens) with logits only where a label is trained."""
    import torch
    import torch.nn.functional as F

    labels = inputs["labels"]
    keep = torch.zeros_like(labels, dtype=torch.bool)
    keep[:, :-1] = labels[:, 1:] != -100
    targets = labels[:, 1:][keep[:, :-1]]
    forward = {k: v for k, v in inputs.items() if k != "labels"}
    logits = model(**forward, use_cache=False, logits_to_keep=keep).logits.float()  # (trained tokens, vocab)
    count = targets.numel()
    total = F.cross_entropy(logits, targets, reduction="sum") if count else logits.sum() * 0.0
    denom = num_items_in_batch if num_items_in_batch is not None else max(count, 1)
    correct = (logits.argmax(-1) == targets).sum() if count else torch.zeros((), dtype=torch.long)
    return total / denom, correct, count


def student_trainer_class() -> Any:
    """SFTTrainer whose loss projects only the trained positions (module docstring)."""
    from trl import SFTTrainer

    class StudentSFTTrainer(SFTTrainer):
        def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
            if return_outputs and not self.args.prediction_loss_only:  # logits wanted: TRL's path
                return super().compute_loss(model, inputs, return_outputs, num_items_in_batch)
            loss, correct, count = trained_positions_loss(model, inputs, num_items_in_batch)
            mode = "train" if self.model.training else "eval"
            self._metrics[mode]["mean_token_accuracy"].append(float(correct) / count if count else 0.0)
            return (loss, {}) if return_outputs else loss  # the dev loss needs no outputs (prediction_loss_only)

    return StudentSFTTrainer


def adapter_meta_callback(prompt: str) -> Any:
    """A TrainerCallback writing the prompt style into every checkpoint, so each evaluates as it was trained."""
    from transformers import TrainerCallback

    class AdapterMeta(TrainerCallback):
        def on_save(self, args, state, control, **kwargs):
            folder = Path(args.output_dir) / f"checkpoint-{state.global_step}"
            if folder.is_dir():
                write_adapter_meta(folder, prompt)
            return control

    return AdapterMeta()


def run_sft(config: SFTRunConfig, *, items: Iterable[Any] | None = None, report_to: str = "none") -> Path:
    """Train the LoRA adapter; returns the adapter folder ``config.out/adapter``. Reruns resume from checkpoints."""
    out = Path(config.out)
    config.save(out)
    trainer, data_stats = build_sft_trainer(config, items=items, report_to=report_to)
    print(f"SFT data: {json.dumps(data_stats)}", flush=True)
    resume = last_checkpoint(out)
    if resume is None and config.resume_from:
        resume = seed_from_milestone(config.resume_from, out)
    if resume:
        print(f"resuming from {resume}", flush=True)
    started = time.perf_counter()
    result = trainer.train(resume_from_checkpoint=resume)
    adapter = out / "adapter"
    trainer.model.save_pretrained(adapter)
    trainer.processing_class.save_pretrained(adapter)
    trainer.state.save_to_json(str(adapter / "trainer_state.json"))  # makes out/adapter a milestone (resume_from)
    config.save(adapter)
    write_adapter_meta(adapter, config.prompt)
    stats = {**data_stats, "train_seconds": round(time.perf_counter() - started, 1),
             "train_loss": result.training_loss, "global_step": trainer.state.global_step, "resumed_from": resume}
    (out / "sft_stats.json").write_text(json.dumps(stats, indent=2), encoding="utf-8")
    return adapter
