"""frs sft on a tiny random Llama: loss masks (no loss on inserted <results>), LoRA training, resumption."""

from __future__ import annotations

import json

import pytest

torch = pytest.importorskip("torch")

from fastreasonseg.data.items import as_item  # noqa: E402
from fastreasonseg.distill.config import SFTRunConfig, TeacherConfig  # noqa: E402
from fastreasonseg.distill.models import build_messages, load_policy, render_prompt  # noqa: E402
from fastreasonseg.distill.sft import build_sft_trainer, run_sft, tokenize_chain  # noqa: E402
from fastreasonseg.distill.teacher import run_teacher  # noqa: E402
from fastreasonseg.distill.testing import make_tiny_chat_model, tiny_items, tiny_twin  # noqa: E402
from fastreasonseg.reasoning.protocol import build_rollout, results_spans  # noqa: E402
from fastreasonseg.twin.tools import run_plan  # noqa: E402

pytestmark = pytest.mark.usefixtures("one_torch_thread")  # tests/conftest.py: tiny models, one thread


@pytest.fixture(scope="module")
def tokenizer(tiny_chat_model):
    return load_policy(str(tiny_chat_model))[1]


def _two_round_chain() -> str:
    twin = tiny_twin()
    first = [{"tool": "filter_label", "args": {"label": "cup"}}]
    second = [{"tool": "depth_order", "args": {"ids": [3, 4]}}]
    return build_rollout("Find the cups, then compare them.", [(first, run_plan(twin, first)),
                                                              (second, run_plan(twin, second))], [3])


CHAINS = {
    "no_tools": tiny_items()[1]["teacher"],
    "one_round": tiny_items()[0]["teacher"],
    "two_rounds": _two_round_chain(),
}


def _without_spans(text: str) -> str:
    out, cursor = [], 0
    for start, end in results_spans(text):
        out.append(text[cursor:start])
        cursor = end
    out.append(text[cursor:])
    return "".join(out)


@pytest.mark.parametrize("name", list(CHAINS))
def test_tokenize_chain_trains_exactly_the_model_written_text(tokenizer, name):
    rollout = CHAINS[name]
    view = as_item(tiny_items()[0])
    messages = build_messages(view.twin, view.query, tokenizer)
    chain = tokenize_chain(tokenizer, messages, rollout)
    prompt_len = len(tokenizer(render_prompt(tokenizer, messages), add_special_tokens=False)["input_ids"])
    assert len(chain.input_ids) == len(chain.assistant_masks)
    assert not any(chain.assistant_masks[:prompt_len])  # no loss on the prompt
    trained = [t for t, m in zip(chain.input_ids, chain.assistant_masks, strict=True) if m]
    assert tokenizer.decode(trained) == _without_spans(rollout) + tokenizer.eos_token
    masked = [t for t, m in zip(chain.input_ids[prompt_len:], chain.assistant_masks[prompt_len:], strict=True) if not m]
    assert tokenizer.decode(masked) == "".join(rollout[a:b] for a, b in results_spans(rollout))
    assert chain.results_tokens == len(masked)
    assert (chain.results_tokens > 0) == (name != "no_tools")


def test_no_gradient_from_results_tokens(tiny_chat_model, tokenizer):
    """With TRL's labels (-100 where the mask is 0) the loss has exactly zero gradient at every
    position whose next token is inserted text, and the loss equals the mean over trained tokens."""
    model, _ = load_policy(str(tiny_chat_model))
    view = as_item(tiny_items()[0])
    chain = tokenize_chain(tokenizer, build_messages(view.twin, view.query, tokenizer), CHAINS["two_rounds"])
    ids = torch.tensor([chain.input_ids])
    labels = ids.clone()
    labels[0, torch.tensor(chain.assistant_masks) == 0] = -100
    output = model(input_ids=ids)
    logits = output.logits
    logits.retain_grad()
    loss = torch.nn.functional.cross_entropy(logits[0, :-1], labels[0, 1:], ignore_index=-100)
    assert loss.item() == pytest.approx(model(input_ids=ids, labels=labels).loss.item(), rel=1e-5)
    loss.backward()
    grad_norm = logits.grad[0, :-1].abs().sum(dim=-1)
    next_is_trained = torch.tensor(chain.assistant_masks[1:], dtype=torch.bool)
    assert torch.all(grad_norm[~next_is_trained] == 0)
    assert torch.all(grad_norm[next_is_trained] > 0)


@pytest.fixture(scope="module")
def workdir(tmp_path_factory, tiny_chat_model):
    root = tmp_path_factory.mktemp("sft")
    items = root / "items.jsonl"
    rows = []
    for index in range(4):
        base = tiny_items()[index % 2]
        rows.append({**base, "id": f"{base['id']}-{index}"})
    items.write_text("".join(json.dumps(r) + "\n" for r in rows))
    run_teacher(TeacherConfig(items=str(items), out=str(root / "teacher")), progress=False)
    return root


def _config(workdir, tiny_chat_model, **overrides) -> SFTRunConfig:
    values = {"items": str(workdir / "items.jsonl"), "chains": str(workdir / "teacher" / "chains.jsonl"),
              "out": str(workdir / "run"), "model": str(tiny_chat_model), "lora_r": 4, "lora_alpha": 8, "batch_size": 2,
              "gradient_accumulation": 1, "learning_rate": 5e-3, "max_steps": 2, "save_steps": 1,
              "logging_steps": 1, "max_length": 1500}
    values.update(overrides)
    return SFTRunConfig(**values)


def test_sft_trainer_labels_and_lora_update(workdir, tiny_chat_model):
    trainer, stats = build_sft_trainer(_config(workdir, tiny_chat_model, out=str(workdir / "direct")))
    assert stats["examples"] == 4 and stats["masked_results_tokens"] > 0
    row = trainer.train_dataset[0]
    chains = [tokenize_chain(trainer.processing_class, build_messages(as_item(i).twin, as_item(i).query,
                                                                      trainer.processing_class, prompt="v2"),
                             i["teacher"])
              for i in tiny_items()]
    expected = next(c for c in chains if c.input_ids == row["input_ids"])
    # TRL folded assistant_masks into labels: -100 exactly on prompt and inserted results.
    assert [label == -100 for label in row["labels"]] == [m == 0 for m in expected.assistant_masks]
    lora = {n: p.detach().clone() for n, p in trainer.model.named_parameters() if "lora_" in n}
    assert lora and all(p.requires_grad for n, p in trainer.model.named_parameters() if "lora_" in n)
    frozen = {n: p.detach().clone() for n, p in trainer.model.named_parameters() if "lora_" not in n}
    trainer.train()
    after = dict(trainer.model.named_parameters())
    assert any(not torch.equal(lora[n], after[n]) for n in lora if "lora_B" in n)
    assert all(torch.equal(frozen[n], after[n]) for n in frozen)


def test_tokenised_examples_are_cached_and_rebuilt_when_the_data_changes(workdir, tiny_chat_model, tmp_path):
    config = _config(workdir, tiny_chat_model, out=str(tmp_path / "cached"))
    first, stats = build_sft_trainer(config)
    assert stats["examples_cache"] == "written"
    [cache] = list((tmp_path / "cached").glob("examples-*.json"))
    second, stats = build_sft_trainer(config)
    assert stats["examples_cache"] == "read" and stats["examples"] == 4
    assert second.train_dataset["input_ids"] == first.train_dataset["input_ids"]
    assert second.train_dataset["labels"] == first.train_dataset["labels"]
    # other chains (one dropped): a new key, built afresh, not the stale examples
    chains = tmp_path / "fewer.jsonl"
    lines = (workdir / "teacher" / "chains.jsonl").read_text().splitlines(keepends=True)
    chains.write_text("".join(lines[1:]))
    _, stats = build_sft_trainer(_config(workdir, tiny_chat_model, out=str(tmp_path / "cached"), chains=str(chains)))
    assert stats["examples_cache"] == "written" and stats["examples"] == 3
    assert len(list((tmp_path / "cached").glob("examples-*.json"))) == 2
    cache.write_text("{not json")  # a damaged cache is rebuilt, never trusted
    _, stats = build_sft_trainer(config)
    assert stats["examples_cache"] == "written" and stats["examples"] == 4


def test_sft_trains_a_qwen3_student(workdir, tmp_path):
    qwen = make_tiny_chat_model(tmp_path / "qwen3", arch="qwen3")
    trainer, _ = build_sft_trainer(_config(workdir, qwen, out=str(tmp_path / "run"), max_steps=1, warmup_ratio=0.0))
    assert type(trainer.model.get_base_model()).__name__ == "Qwen3ForCausalLM"
    targets = {n.split(".")[-4] for n, _ in trainer.model.named_parameters() if "lora_A" in n}
    assert targets == {"q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"}
    lora = {n: p.detach().clone() for n, p in trainer.model.named_parameters() if "lora_B" in n}
    trainer.train()
    after = dict(trainer.model.named_parameters())
    assert any(not torch.equal(lora[n], after[n]) for n in lora)


def test_run_sft_saves_adapter_and_resumes(workdir, tiny_chat_model):
    config = _config(workdir, tiny_chat_model, max_steps=2)
    adapter = run_sft(config)
    assert (adapter / "adapter_config.json").is_file() and (adapter / "adapter_model.safetensors").is_file()
    assert (workdir / "run" / "resolved_config.yaml").is_file() and (adapter / "resolved_config.yaml").is_file()
    stats = json.loads((workdir / "run" / "sft_stats.json").read_text())
    assert stats["global_step"] == 2 and stats["resumed_from"] is None
    resumed = run_sft(_config(workdir, tiny_chat_model, max_steps=3))
    stats = json.loads((workdir / "run" / "sft_stats.json").read_text())
    assert stats["global_step"] == 3 and stats["resumed_from"].endswith("checkpoint-2")
    # The saved adapter loads through the runtime's loader.
    model, _ = load_policy(str(tiny_chat_model), adapter=str(resumed))
    assert any("lora_" in n for n, _ in model.named_parameters())


def test_trained_positions_loss_equals_trls_fused_loss(workdir, tiny_chat_model):
    """The student trainer's loss (logits only at trained positions) and its gradients are TRL's on the same batch."""
    from trl import SFTTrainer

    # No LoRA dropout: its random masks would differ between the two passes.
    trainer, _ = build_sft_trainer(_config(workdir, tiny_chat_model, out=str(workdir / "parity"), lora_dropout=0.0))
    batch = next(iter(trainer.get_train_dataloader()))
    trained = int((batch["labels"][:, 1:] != -100).sum())
    assert 0 < trained < batch["labels"].numel() // 2  # the prompt and the results are not trained
    lora = [p for n, p in trainer.model.named_parameters() if "lora_B" in n]  # lora_A grads are 0 at init
    results = []
    for compute in (type(trainer).compute_loss, SFTTrainer.compute_loss):
        trainer.model.zero_grad()
        loss = compute(trainer, trainer.model, dict(batch), num_items_in_batch=torch.tensor(trained))
        loss.backward()
        results.append((loss.detach(), [p.grad.clone() for p in lora]))
    (ours, our_grads), (trls, trl_grads) = results
    assert float(ours) > 0 and torch.allclose(ours, trls, rtol=1e-4)
    assert all(torch.allclose(a, b, rtol=1e-3, atol=1e-6) for a, b in zip(our_grads, trl_grads, strict=True))
    assert any(float(g.abs().sum()) > 0 for g in our_grads)
    # The dev loss goes through the same loss (no logits kept) and is TRL's mean token NLL.
    dev, _ = build_sft_trainer(_config(workdir, tiny_chat_model, out=str(workdir / "parity-dev"), lora_dropout=0.0,
                                       dev_items=str(workdir / "items.jsonl"),
                                       dev_chains=str(workdir / "teacher" / "chains.jsonl")))
    loss = dev.evaluate()["eval_loss"]
    assert 0 < loss < 20


def _recorded_batches(trainer) -> tuple[list[list[int]], dict]:
    """Patch ``trainer.training_step`` to record each micro-batch's first row of input ids, and the
    LoRA weights the first step starts from."""
    seen: list[list[int]] = []
    start: dict = {}
    step = trainer.training_step

    def record(model, inputs, *args, **kwargs):
        if not seen:
            start.update({n: p.detach().clone() for n, p in model.named_parameters() if "lora_" in n})
        seen.append(inputs["input_ids"][0].tolist())
        return step(model, inputs, *args, **kwargs)

    trainer.training_step = record
    return seen, start


def test_a_new_machine_resumes_from_a_committed_milestone(workdir, tiny_chat_model, tmp_path):
    """A run whose checkpoints are lost continues from an exported milestone: from the milestone's weights
    and step, on the batches an uninterrupted run would have trained next."""
    from safetensors.torch import load_file

    from fastreasonseg.distill.export import export_student
    from fastreasonseg.distill.sft import seed_from_milestone
    from fastreasonseg.errors import FrsError

    settings = {"batch_size": 1, "max_steps": 4, "save_steps": 2, "sampling": "random"}
    straight, _ = build_sft_trainer(_config(workdir, tiny_chat_model, out=str(tmp_path / "straight"), **settings))
    straight_batches, _ = _recorded_batches(straight)
    straight.train()
    first = run_sft(_config(workdir, tiny_chat_model, out=str(tmp_path / "lost"), **{**settings, "max_steps": 2}))
    milestone = export_student(first, tmp_path / "milestone")  # what gets committed: fp16 adapter + trainer state
    assert json.loads((milestone / "trainer_state.json").read_text())["global_step"] == 2
    # The new machine: an empty out and the milestone named; the run goes on at step 3.
    run_sft(_config(workdir, tiny_chat_model, out=str(tmp_path / "new"), resume_from=str(milestone),
                    **{**settings, "max_steps": 3}))
    stats = json.loads((tmp_path / "new" / "sft_stats.json").read_text())
    assert stats["global_step"] == 3 and stats["resumed_from"].endswith("checkpoint-2")
    # Continuing to step 4 starts from the milestone's weights and trains batches 3 and 4 of the uninterrupted run.
    resumed, _ = build_sft_trainer(_config(workdir, tiny_chat_model, out=str(tmp_path / "new2"), **settings))
    resumed_batches, start = _recorded_batches(resumed)
    resumed.train(resume_from_checkpoint=seed_from_milestone(milestone, tmp_path / "new2"))
    assert resumed.state.global_step == 4
    assert len(straight_batches) == 4 and resumed_batches == straight_batches[2:]
    assert straight_batches[2:] != straight_batches[:2]  # the check can tell batches apart
    kept = load_file(str(milestone / "adapter_model.safetensors"))
    assert any(float(v.abs().sum()) > 0 for k, v in kept.items() if "lora_B" in k)
    by_suffix = {k.split("base_model.model.", 1)[-1].replace(".weight", ""): v for k, v in kept.items()}
    matched = 0
    for name, value in start.items():
        key = name.split("base_model.model.", 1)[-1].replace(".default", "").replace(".weight", "")
        if key in by_suffix:
            matched += 1
            assert torch.allclose(value.float(), by_suffix[key].float(), atol=1e-3)
    assert matched == len(kept)
    with pytest.raises(FrsError, match="not a milestone"):
        seed_from_milestone(tmp_path / "lost" / "no-such-folder", tmp_path / "x")


def test_second_session_continues_the_given_adapter(workdir, tiny_chat_model, tmp_path):
    """``adapter=`` trains an existing LoRA further: it starts from the saved weights (not a fresh
    zero-B LoRA), keeps the adapter's own rank, and its update moves those weights."""
    first = run_sft(_config(workdir, tiny_chat_model, out=str(tmp_path / "s1"), max_steps=2))
    trainer, _ = build_sft_trainer(_config(workdir, tiny_chat_model, out=str(tmp_path / "s2"), adapter=str(first),
                                           lora_r=8, max_steps=1, warmup_ratio=0.0))
    from safetensors.torch import load_file

    saved = load_file(str(first / "adapter_model.safetensors"))
    params = {n: p for n, p in trainer.model.named_parameters() if "lora_B" in n}
    assert params and all(p.requires_grad for p in params.values())
    start = {n: p.detach().clone() for n, p in params.items()}
    # The loaded B matrices are the first session's (non-zero), at its rank 4, not the requested 8.
    assert all(p.shape[1] == 4 for p in start.values())
    assert sum(float(p.abs().sum()) for p in start.values()) == pytest.approx(
        sum(float(v.abs().sum()) for k, v in saved.items() if "lora_B" in k), rel=1e-4)
    assert sum(float(p.abs().sum()) for p in start.values()) > 0
    trainer.train()
    assert any(not torch.equal(start[n], p.detach()) for n, p in params.items())


def test_sft_config_errors_name_the_fix(workdir, tiny_chat_model):
    with pytest.raises(ValueError, match="chains must name"):
        SFTRunConfig(items="x.jsonl")
    with pytest.raises(ValueError, match="lora_r"):
        _config(workdir, tiny_chat_model, lora_r=0)
    with pytest.raises(ValueError, match="max_length"):
        _config(workdir, tiny_chat_model, max_length=8)


def test_export_student_writes_fp16_adapter_and_model_card(tiny_chat_model, tmp_path):
    from peft import get_peft_model
    from safetensors.torch import load_file

    from fastreasonseg.distill.export import export_student
    from fastreasonseg.distill.models import lora_config
    from fastreasonseg.errors import FrsError

    model, _ = load_policy(str(tiny_chat_model))
    peft_model = get_peft_model(model, lora_config(4, 8, 0.0, ("q_proj", "v_proj")))
    peft_model.save_pretrained(tmp_path / "trained")
    (tmp_path / "sft").mkdir()
    (tmp_path / "sft" / "resolved_config.yaml").write_text("config_class: SFTRunConfig\n")
    (tmp_path / "trained" / "resolved_config.yaml").write_text(f"config_class: RLRunConfig\nadapter: {tmp_path / 'sft'}\n")
    summary = {"count": 2, "metrics": {"overall": {"count": 2, "gIoU": 0.75, "cIoU": 0.7},  # evaluate_reasoner's
                                       "category": {"spatial": {"count": 1, "gIoU": 0.5, "cIoU": 0.5}}},
               "parse_failure_rate": 0.0}
    dest = export_student(tmp_path / "trained", tmp_path / "export", summary=summary, note="SFT 1 epoch")
    tensors = load_file(str(dest / "adapter_model.safetensors"))
    assert tensors and all(t.dtype == torch.float16 for t in tensors.values())
    assert json.loads((dest / "adapter_config.json").read_text())["base_model_name_or_path"].startswith("HuggingFaceTB/")
    card = (dest / "MODEL_CARD.md").read_text()
    assert "| overall | 2 | 0.750 | 0.700 |" in card and "category=spatial" in card and "SFT 1 epoch" in card
    assert "RLRunConfig" in (dest / "resolved_config.yaml").read_text()
    assert "SFTRunConfig" in (dest / "stage1_resolved_config.yaml").read_text()  # the stage GRPO started from
    eval_summary = {"count": 2, "overall": {"count": 2, "gIoU": 0.5, "cIoU": 0.4},  # `frs eval` summary.json
                    "groups": {"level": {"L2": {"count": 2, "gIoU": 0.5, "cIoU": 0.4}}}}
    card2 = (export_student(tmp_path / "trained", tmp_path / "e2", summary=eval_summary, data="dev split")
             / "MODEL_CARD.md").read_text()
    assert json.loads((tmp_path / "e2" / "eval_summary.json").read_text())["data"] == "dev split"
    assert "| level=L2 | 2 | 0.500 | 0.400 |" in card2
    reloaded, _ = load_policy(str(tiny_chat_model), adapter=str(dest))  # loads back through the runtime's PEFT path
    assert any("lora_" in n for n, _ in reloaded.named_parameters())
    with pytest.raises(FrsError, match="MB limit"):
        export_student(tmp_path / "trained", tmp_path / "too_big", max_mb=0.0001)


def test_export_student_finds_run_config_of_a_checkpoint_folder(tiny_chat_model, tmp_path):
    """A Trainer checkpoint-N folder has no resolved_config.yaml of its own: the run folder's is used."""
    from peft import get_peft_model

    from fastreasonseg.distill.export import export_student
    from fastreasonseg.distill.models import lora_config

    model, _ = load_policy(str(tiny_chat_model))
    ckpt = tmp_path / "run" / "checkpoint-40"
    get_peft_model(model, lora_config(4, 8, 0.0, ("q_proj", "v_proj"))).save_pretrained(ckpt)
    (tmp_path / "run" / "resolved_config.yaml").write_text("config_class: SFTRunConfig\nlearning_rate: 0.0004\n")
    dest = export_student(ckpt, tmp_path / "export")
    assert "learning_rate: 0.0004" in (dest / "resolved_config.yaml").read_text()
    assert "resolved_config.yaml" in (dest / "MODEL_CARD.md").read_text()
    lone = tmp_path / "lone" / "adapter"  # not a checkpoint folder: the parent's config is not borrowed
    get_peft_model(load_policy(str(tiny_chat_model))[0], lora_config(4, 8, 0.0, ("q_proj",))).save_pretrained(lone)
    (tmp_path / "lone" / "resolved_config.yaml").write_text("config_class: SFTRunConfig\n")
    assert not (export_student(lone, tmp_path / "export2") / "resolved_config.yaml").exists()
