"""Loading the policy for training and building its prompts exactly as inference does.

The trainers load a causal LM by hub id, local folder or GGUF file (transformers
``gguf_file=``; a GGUF is de-quantised, so SmolLM2-135M Q4_1 trains in float32) and add
LoRA on the attention and MLP projections. Prompts come from the runtime's one
:class:`~fastreasonseg.reasoning.prompt.PromptBuilder` and are rendered with the chat
template the same way :class:`~fastreasonseg.reasoning.backends.hf.HFBackend` renders them
(``enable_thinking=False`` for Qwen3 templates), so SFT, RL and inference see one prompt.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from fastreasonseg.errors import FrsError
from fastreasonseg.hardware import check_bf16 as check_bf16  # moved (perception shares it); sft/grpo import it here

if TYPE_CHECKING:
    from fastreasonseg.twin.core import DigitalTwin

CHAT_TEMPLATE_KWARGS: dict[str, Any] = {"enable_thinking": False}


def load_policy(model: str, gguf_file: str | None = None, dtype: str = "float32", adapter: str | None = None,
                trainable_adapter: bool = True) -> tuple[Any, Any]:
    """(model, tokenizer) for training on the CPU; ``adapter`` loads a PEFT LoRA to keep training.

    The tokenizer gets a pad token (its EOS) when it has none; the model stays on the CPU
    (never CUDA by default).
    """
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    kwargs: dict[str, Any] = {"gguf_file": gguf_file} if gguf_file else {}
    where = f"{model}/{gguf_file}" if gguf_file else model
    try:
        tokenizer = AutoTokenizer.from_pretrained(model, **kwargs)
        policy = AutoModelForCausalLM.from_pretrained(model, dtype=getattr(torch, dtype), **kwargs)
    except (OSError, ValueError, KeyError) as exc:
        raise FrsError(f"cannot load model {where!r}: {exc}. Give a local folder, a folder + gguf_file, or a hub id "
                       "that is cached locally (there may be no network).") from None
    quantizer = getattr(policy, "hf_quantizer", None)
    if gguf_file and quantizer is not None:
        # transformers de-quantises GGUF weights into ordinary float tensors but keeps the GGUF
        # "quantizer" and is_quantized=True on the model, and Trainer refuses to train quantized
        # models. Nothing quantized is left, so remove the marker the quantizer's own way.
        quantizer.remove_quantization_config(policy)
    if getattr(tokenizer, "chat_template", None) is None:
        raise FrsError(f"the tokenizer of {where} has no chat template; train a chat/instruct model")
    if tokenizer.pad_token_id is None:
        tokenizer.pad_token = tokenizer.eos_token
    if adapter:
        from peft import PeftModel

        if not (Path(adapter) / "adapter_config.json").is_file():
            raise FrsError(f"adapter {adapter!r} is not a PEFT adapter folder (no adapter_config.json)")
        policy = PeftModel.from_pretrained(policy, adapter, is_trainable=trainable_adapter)
    return policy, tokenizer


def lora_config(r: int, alpha: int, dropout: float, targets: tuple[str, ...] | list[str]) -> Any:
    from peft import LoraConfig

    return LoraConfig(r=r, lora_alpha=alpha, lora_dropout=dropout, target_modules=list(targets), bias="none",
                      task_type="CAUSAL_LM")


def render_prompt(tokenizer: Any, messages: list[dict[str, str]]) -> str:
    """The chat-template text up to the assistant turn (as ``HFBackend.render`` with an empty prefix)."""
    try:
        return tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True,
                                             **CHAT_TEMPLATE_KWARGS)
    except TypeError:  # templates that reject unknown kwargs
        return tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)


def token_counter(tokenizer: Any):
    def count(text: str) -> int:
        return len(tokenizer(text, add_special_tokens=False)["input_ids"])

    return count


def build_messages(twin: DigitalTwin, query: str, tokenizer: Any | None = None, *, few_shot: bool = False,
                   twin_max_tokens: int | None = 1200, prompt: str = "v1") -> list[dict[str, str]]:
    """The runtime's messages for ``query`` on ``twin`` (what ``RolloutEngine.messages`` builds) in style ``prompt``."""
    from fastreasonseg.reasoning.prompt import PromptBuilder

    counter = token_counter(tokenizer) if tokenizer is not None and twin_max_tokens is not None else None
    builder = PromptBuilder(few_shot=few_shot, style=prompt)
    return builder.messages_for(twin, query, max_tokens=twin_max_tokens, count_tokens=counter)
