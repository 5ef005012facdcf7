"""frs rl: multi-turn tool rollouts with env_mask, GRPO steps on a tiny Llama, no gradient on inserted <results>."""

from __future__ import annotations

import json

import pytest

torch = pytest.importorskip("torch")

from fastreasonseg.data.items import as_item  # noqa: E402
from fastreasonseg.distill.config import RLRunConfig  # noqa: E402
from fastreasonseg.distill.grpo import (  # noqa: E402
    _split_turn,
    build_rl_dataset,
    build_rl_trainer,
    generate_tool_rollouts,
    make_rewards,
)
from fastreasonseg.distill.models import build_messages, load_policy, render_prompt  # noqa: E402
from fastreasonseg.distill.testing import make_tiny_chat_model, memorize_chains, tiny_items  # noqa: E402
from fastreasonseg.reasoning.protocol import results_block  # noqa: E402
from fastreasonseg.twin.tools import run_plan  # noqa: E402


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    """Tiny models gain nothing from threads, and spinning OpenMP threads on a shared 2-core machine
    slow a backward pass down by an order of magnitude."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def policy_dir(tmp_path_factory):
    """A tiny Llama that has memorised the teacher chains, so its rollouts really pause at </plan>."""
    folder = make_tiny_chat_model(tmp_path_factory.mktemp("policy"))
    return memorize_chains(folder, tiny_items(), steps=80)


@pytest.fixture(scope="module")
def items_path(tmp_path_factory):
    path = tmp_path_factory.mktemp("items") / "items.jsonl"
    path.write_text("".join(json.dumps(i) + "\n" for i in tiny_items()))
    return path


def _prompt_ids(tokenizer, item):
    view = as_item(item)
    return tokenizer(render_prompt(tokenizer, build_messages(view.twin, view.query, tokenizer)),
                     add_special_tokens=False)["input_ids"]


@pytest.mark.parametrize(("text", "how", "kept_text"), [
    ("<reason>a</reason>\n<plan>[]</plan>\n<results>", "stop", "<reason>a</reason>\n<plan>[]</plan>"),
    ("<reason>a</reason>\n<answer>[1]</answer>\nmore", "stop", "<reason>a</reason>\n<answer>[1]</answer>"),
    ("<reason>a</reason>", "length", "<reason>a</reason>"),
])
def test_split_turn_cuts_at_the_first_stop(policy_dir, text, how, kept_text):
    _, tokenizer = load_policy(str(policy_dir))
    ids = tokenizer(text, add_special_tokens=False)["input_ids"]
    kept, cut, got = _split_turn(tokenizer, ids, frozenset({tokenizer.eos_token_id}))
    assert (got, cut) == (how, kept_text)
    assert tokenizer.decode(kept) == kept_text


def test_split_turn_stops_at_eos(policy_dir):
    _, tokenizer = load_policy(str(policy_dir))
    ids = tokenizer("<reason>a", add_special_tokens=False)["input_ids"]
    eos = tokenizer.eos_token_id
    kept, text, how = _split_turn(tokenizer, [*ids, eos, eos], frozenset({eos}))
    assert (kept, text, how) == (ids, "<reason>a", "eos")


def test_turn_whose_last_token_runs_past_the_stop_string(policy_dir):
    """The tiny BPE has a '>[' token: a model that writes '</plan' + '>[' stops inside that token.
    The runtime keeps the text up to '</plan>' only; the re-encoded '>' is runtime text (mask 0)."""
    from fastreasonseg.distill.grpo import RolloutSample, _advance

    _, tokenizer = load_policy(str(policy_dir))
    item = tiny_items()[0]
    written = '<reason>r</reason>\n<plan>[{"tool": "depth_order", "args": {"ids": [3, 4]}}]</plan>[1]'
    ids = tokenizer(written, add_special_tokens=False)["input_ids"]
    assert tokenizer.convert_ids_to_tokens(ids)[-3:] == [">[", "1", "]"]  # "</plan" + ">[": the stop ends mid-token
    sample = RolloutSample(prompt_ids=[1, 2])
    _advance(sample, tokenizer, ids, frozenset({tokenizer.eos_token_id}), as_item(item).twin,
             max_new_tokens=200, max_new_tokens_per_turn=200, max_tool_rounds=3)
    calls = [{"tool": "depth_order", "args": {"ids": [3, 4]}}]
    expected = written[: written.index("</plan>") + len("</plan>")]
    assert sample.text == expected + results_block(run_plan(as_item(item).twin, calls))
    assert tokenizer.decode(sample.completion_ids) == sample.text
    sampled = [t for t, m in zip(sample.completion_ids, sample.env_mask, strict=True) if m]
    assert tokenizer.decode(sampled) == expected[: -len(">")]  # the fused token was not kept as sampled
    assert sample.rounds == 1 and not sample.done


@pytest.mark.parametrize("bf16", [False, True])
def test_rollouts_insert_results_with_env_mask_zero(policy_dir, bf16):
    model, tokenizer = load_policy(str(policy_dir))
    items = tiny_items()
    twins = [as_item(i).twin for i in items]
    torch.manual_seed(0)
    samples = generate_tool_rollouts(model, tokenizer, [_prompt_ids(tokenizer, i) for i in items], twins,
                                     temperature=0.05, max_new_tokens=120, max_new_tokens_per_turn=80, bf16=bf16)
    assert model.dtype == torch.float32  # autocast, not a cast of the weights
    cup, knife = samples
    assert cup.text == items[0]["teacher"] and knife.text == items[1]["teacher"]
    assert cup.rounds == 1 and knife.rounds == 0 and not cup.failures and not knife.failures
    for sample, item in zip(samples, items, strict=True):
        assert len(sample.completion_ids) == len(sample.env_mask)
        assert sample.completion_ids[-1] == tokenizer.eos_token_id and sample.env_mask[-1] == 0
        inserted = tokenizer.decode([t for t, m in zip(sample.completion_ids, sample.env_mask, strict=True) if not m],
                                    skip_special_tokens=True)
        sampled = tokenizer.decode([t for t, m in zip(sample.completion_ids, sample.env_mask, strict=True) if m])
        assert sample.model_tokens == sum(sample.env_mask)
        if sample is cup:
            calls = [{"tool": "depth_order", "args": {"ids": [3, 4]}}]
            assert inserted == results_block(run_plan(twins[0], calls))  # exactly the runtime's text
        else:
            assert inserted == ""
        assert sampled == item["teacher"].replace(inserted, "")  # the model wrote everything else


def test_rollout_budgets_end_runaway_samples(policy_dir):
    model, tokenizer = load_policy(str(policy_dir))
    item = tiny_items()[0]
    samples = generate_tool_rollouts(model, tokenizer, [_prompt_ids(tokenizer, item)], [as_item(item).twin],
                                     temperature=0.05, max_new_tokens=30, max_new_tokens_per_turn=30)
    assert samples[0].model_tokens <= 30
    assert [f.code for f in samples[0].failures] == ["token_budget_exhausted"]
    no_tools = generate_tool_rollouts(model, tokenizer, [_prompt_ids(tokenizer, item)], [as_item(item).twin],
                                      temperature=0.05, max_new_tokens=120, max_new_tokens_per_turn=80,
                                      max_tool_rounds=0)
    assert [f.code for f in no_tools[0].failures] == ["too_many_tool_rounds"]
    assert 0 not in no_tools[0].env_mask  # nothing was inserted


def test_build_rl_dataset_columns_feed_the_rewards(policy_dir):
    _, tokenizer = load_policy(str(policy_dir))
    dataset, table = build_rl_dataset(tiny_items(), tokenizer)
    assert len(dataset) == 2 and len(table) == 2
    row = dataset[0]
    assert row["prompt"][-1]["content"] in table and row["gt_masks_json"]
    config = RLRunConfig(items="x.jsonl", model=str(policy_dir))
    funcs, weights = make_rewards(config)
    assert [getattr(f, "__name__", "") for f in funcs] == ["format_reward", "accuracy", "reasoning"]
    assert weights == [1.0, 1.0, 0.5]
    columns = {k: [row[k]] for k in row if k != "prompt"}
    assert funcs[0]([row["teacher"]], **columns) == [0.5]
    assert funcs[1]([row["teacher"]], **columns) == [1.0]
    teacher_only = RLRunConfig(items="x.jsonl", model=str(policy_dir), teacher_mode=True)
    assert [name for name, _ in teacher_only.active_rewards] == ["format", "accuracy"]


def alternating_reward(completions, **kwargs):
    """Rewards that differ inside every group, so advantages are non-zero whatever the tiny model writes."""
    return [float(index % 2) for index in range(len(completions))]


def _rl_config(policy_dir, items_path, tmp_path, **overrides):
    values = {"items": str(items_path), "out": str(tmp_path / "rl"), "model": str(policy_dir), "num_generations": 2,
              "max_steps": 1, "max_new_tokens": 100, "max_new_tokens_per_turn": 80, "temperature": 0.7,
              "learning_rate": 5e-2, "lora_r": 4, "lora_alpha": 8, "save_steps": 1, "beta": 0.04}
    values.update(overrides)
    return RLRunConfig(**values)


def test_grpo_masks_results_tokens_from_the_policy_gradient(policy_dir, items_path, tmp_path):
    trainer = build_rl_trainer(_rl_config(policy_dir, items_path, tmp_path),
                               reward_funcs=[(alternating_reward, 1.0)])
    batch = next(iter(trainer.get_train_dataloader()))
    trainer.current_gradient_accumulation_steps = 1  # set by the training loop, which this test steps by hand
    inputs = trainer._prepare_inputs(batch)
    tokenizer = trainer.processing_class
    tool_mask, completion_ids = inputs["tool_mask"], inputs["completion_ids"]
    assert bool((inputs["advantages"] != 0).any())
    saw_results = False
    for row in range(completion_ids.shape[0]):
        length = int(inputs["completion_mask"][row].sum())
        ids = completion_ids[row, :length].tolist()
        inserted = tokenizer.decode([t for t, m in zip(ids, tool_mask[row, :length].tolist(), strict=True) if not m],
                                    skip_special_tokens=True)
        text = tokenizer.decode(ids, skip_special_tokens=True)
        if "<results>" in text:
            saw_results = True
            start = text.index("</plan>") + len("</plan>")
            end = text.index("</results>") + len("</results>\n")
            assert inserted == text[start:end]  # exactly the inserted block is masked
        else:
            assert inserted == ""
    assert saw_results

    captured = {}
    original = trainer._get_per_token_logps_and_entropies

    def capture(*args, **kwargs):
        logps, entropies, aux = original(*args, **kwargs)
        if logps.requires_grad:
            logps.retain_grad()
            captured["logps"] = logps
        return logps, entropies, aux

    trainer._get_per_token_logps_and_entropies = capture
    loss = trainer.compute_loss(trainer.model, inputs)
    loss.backward()
    grad = captured["logps"].grad
    loss_mask = inputs["completion_mask"] * tool_mask
    assert torch.all(grad[loss_mask == 0] == 0)  # inserted results (and padding) get no gradient
    assert bool((grad[loss_mask == 1] != 0).any())


def test_grpo_training_changes_lora_and_saves(policy_dir, items_path, tmp_path):
    from fastreasonseg.distill.grpo import _save_default_adapter

    trainer = build_rl_trainer(_rl_config(policy_dir, items_path, tmp_path, max_steps=2),
                               reward_funcs=[(alternating_reward, 1.0)])
    before = {n: p.detach().clone() for n, p in trainer.model.named_parameters() if p.requires_grad}
    assert before and all("lora_" in n for n in before)
    trainer.train()
    after = dict(trainer.model.named_parameters())
    assert any(not torch.equal(before[n], after[n]) for n in before)
    _save_default_adapter(trainer.model, tmp_path / "adapter")
    assert (tmp_path / "adapter" / "adapter_model.safetensors").is_file()
    assert trainer.state.global_step == 2


def test_rl_config_validation_and_overrides(tmp_path):
    config = RLRunConfig.load(None, ["items=x.jsonl", "reward_weights.reasoning=0", "rewards=[format, accuracy, "
                                                                                    "reasoning]"])
    assert [name for name, _ in config.active_rewards] == ["format", "accuracy"]  # weight 0 drops the term
    with pytest.raises(ValueError, match="num_generations"):
        RLRunConfig(items="x.jsonl", num_generations=1)
    with pytest.raises(ValueError, match="unknown rewards"):
        RLRunConfig(items="x.jsonl", rewards=("format", "style"))
    with pytest.raises(ValueError, match="unknown settings"):
        RLRunConfig.load(None, {"items": "x", "lr": 1})
    path = config.save(tmp_path)
    assert "reward_weights" in path.read_text() and "versions" in path.read_text()


def test_run_rl_resumes_and_saves_only_the_trained_adapter(policy_dir, items_path, tmp_path):
    from fastreasonseg.distill.grpo import run_rl

    config = _rl_config(policy_dir, items_path, tmp_path, rewards=("format", "accuracy"), max_steps=1)
    adapter = run_rl(config)
    assert (adapter / "adapter_config.json").is_file() and (adapter / "resolved_config.yaml").is_file()
    stats = json.loads((tmp_path / "rl" / "rl_stats.json").read_text())
    assert stats["global_step"] == 1 and stats["resumed_from"] is None
    assert stats["learning_signal"]["logged_steps"] == 1
    run_rl(_rl_config(policy_dir, items_path, tmp_path, rewards=("format", "accuracy"), max_steps=2))
    stats = json.loads((tmp_path / "rl" / "rl_stats.json").read_text())
    assert stats["global_step"] == 2 and stats["resumed_from"].endswith("checkpoint-1")
    # SFT + RL: starting from an adapter, TRL keeps a frozen "ref" copy for the KL term; only "default" is saved.
    second = run_rl(_rl_config(policy_dir, items_path, tmp_path, out=str(tmp_path / "rl2"), adapter=str(adapter),
                               rewards=("format",), max_steps=1))
    from safetensors.torch import load_file

    names = list(load_file(str(second / "adapter_model.safetensors")))
    assert names and not any(".ref." in n for n in names)


# The learning-signal check on log histories shaped like TRL's (values from our RL-only run:
# the base model never wrote the tags, every rollout got R_format = -0.5, the gradient was zero).
_FLAT = {"reward": -0.5, "reward_std": 0.0, "frac_reward_zero_std": 1.0, "rewards/format_reward/mean": -0.5,
         "grad_norm": 0.0, "step": 1}
_LIVE = {"reward": 0.84, "reward_std": 0.72, "frac_reward_zero_std": 0.0, "rewards/format_reward/mean": 0.375, "step": 2}


def test_learning_signal_report_warns_only_when_every_step_is_flat():
    from fastreasonseg.distill.grpo import learning_signal_report

    flat = learning_signal_report([_FLAT, {**_FLAT, "step": 2}, {"train_runtime": 10.0}])
    assert flat["logged_steps"] == 2 and flat["steps_without_signal"] == 2
    assert "no learning signal" in flat["warning"] and "never wrote the protocol" in flat["warning"]
    mixed = learning_signal_report([_FLAT, _LIVE])
    assert mixed["steps_without_signal"] == 1 and mixed["warning"] is None
    # Flat groups that all earned the same non-minimal reward: warned, without blaming the format.
    same = learning_signal_report([{**_FLAT, "reward": 1.5, "rewards/format_reward/mean": 0.5}])
    assert same["warning"] and "never wrote" not in same["warning"]
    assert learning_signal_report([])["warning"] is None


def test_signal_callback_warns_once_after_consecutive_flat_steps():
    from fastreasonseg.distill.grpo import NO_SIGNAL_PATIENCE, _signal_callback

    callback = _signal_callback()
    with pytest.warns(UserWarning, match="without learning signal") as caught:
        for _ in range(NO_SIGNAL_PATIENCE + 3):
            callback.on_log(None, None, None, logs=dict(_FLAT))
    assert len(caught) == 1
    callback = _signal_callback()
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("error")
        for logs in [_FLAT, _FLAT, _LIVE, _FLAT, _FLAT, {"loss": 0.1}]:
            callback.on_log(None, None, None, logs=dict(logs))
    assert callback.flat_run == 2 and not callback.warned
