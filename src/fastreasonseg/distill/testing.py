"""A tiny random-initialised chat model (Llama architecture) saved to a folder, for training smoke tests.

The tokenizer is a byte-level BPE trained in milliseconds on protocol-like text, with a
ChatML template and ``<|im_end|>`` as EOS/pad like SmolLM2; the model is a 2-layer
Llama with hidden size 32. Both are written with ``save_pretrained`` so tests load them
through the same :func:`fastreasonseg.distill.models.load_policy` path as real models.
Nothing is downloaded. :func:`tiny_items` gives two hand-made items on a tiny twin.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from fastreasonseg.twin.core import DigitalTwin

CHATML = ("{% for message in messages %}{{ '<|im_start|>' + message['role'] + '\n' + message['content'] + '<|im_end|>' + "
          "'\n' }}{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}")

_CORPUS = [
    "<reason>The cups are 3 and 4. I compare their depth to find the closer one.</reason>\n",
    '<plan>[{"tool": "depth_order", "args": {"ids": [3, 4]}}]</plan>\n',
    '<results>[{"tool":"depth_order","ok":true,"result":{"near_to_far":[[3,0.2],[4,0.7]]}}]</results>\n',
    "<answer>[3]</answer>",
    "Scene:\nid label box area depth\n1 knife [300,260,420,290] 1.2 0.35\nRequest: what can I cut the bread with?",
    "You find the objects that a request refers to in a scene. The scene lists objects by id.",
    "0123456789 [](){}:,.\"' abcdefghijklmnopqrstuvwxyz ABCDEFGHIJKLMNOPQRSTUVWXYZ",
]


def make_tiny_chat_model(folder: str | Path, *, vocab_size: int = 600, hidden_size: int = 32, layers: int = 2,
                         seed: int = 0, arch: str = "llama") -> Path:
    """Write a tiny tokenizer + random model to ``folder`` and return it.

    ``arch``: ``llama`` (SmolLM2's architecture) or ``qwen3`` (the paper's students), whose
    projections carry the same LoRA target names.
    """
    import torch
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast, Qwen3Config, Qwen3ForCausalLM

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    specials = ["<|endoftext|>", "<|im_start|>", "<|im_end|>"]
    bpe = Tokenizer(models.BPE())
    bpe.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    bpe.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=vocab_size, special_tokens=specials,
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), show_progress=False)
    bpe.train_from_iterator(_CORPUS * 4, trainer=trainer)
    tokenizer = PreTrainedTokenizerFast(tokenizer_object=bpe, bos_token="<|im_start|>", eos_token="<|im_end|>",
                                        pad_token="<|im_end|>", unk_token="<|endoftext|>")
    tokenizer.chat_template = CHATML
    tokenizer.save_pretrained(folder)

    torch.manual_seed(seed)
    config_class, model_class = {"llama": (LlamaConfig, LlamaForCausalLM), "qwen3": (Qwen3Config, Qwen3ForCausalLM)}[arch]
    extra = {"head_dim": hidden_size // 2} if arch == "qwen3" else {}
    config = config_class(vocab_size=len(tokenizer), hidden_size=hidden_size, intermediate_size=2 * hidden_size,
                          num_hidden_layers=layers, num_attention_heads=2, num_key_value_heads=1,
                          max_position_embeddings=4096, eos_token_id=tokenizer.eos_token_id,
                          pad_token_id=tokenizer.pad_token_id, bos_token_id=tokenizer.bos_token_id,
                          tie_word_embeddings=True, **extra)
    model = model_class(config)
    model.generation_config.eos_token_id = tokenizer.eos_token_id
    model.generation_config.pad_token_id = tokenizer.pad_token_id
    model.save_pretrained(folder)
    return folder


def tiny_twin() -> DigitalTwin:
    """A 96x64 image twin: knife 1, bread 2, a near cup 3 and a far cup 4 (boxes as masks)."""
    from fastreasonseg.twin.core import DigitalTwin, Frame, Source, make_object

    objects = (make_object(1, "knife", 0.9, [10, 30, 40, 36], depth=(0.35, 0.02)),
               make_object(2, "bread", 0.88, [45, 25, 80, 45], depth=(0.4, 0.05)),
               make_object(3, "cup", 0.93, [5, 5, 20, 20], depth=(0.2, 0.03)),
               make_object(4, "cup", 0.9, [60, 2, 75, 15], depth=(0.7, 0.03)))
    return DigitalTwin(source=Source(kind="image", width=96, height=64), frames=(Frame(0, 0.0, objects),))


def tiny_items() -> list[dict]:
    """Two items on :func:`tiny_twin` in the synthetic-items schema (:mod:`fastreasonseg.data.items`), with
    programmatic-style teacher chains: one with a tool round, one without."""
    from fastreasonseg.reasoning.protocol import build_rollout
    from fastreasonseg.twin.masks import encode_mask
    from fastreasonseg.twin.tools import run_plan

    twin = tiny_twin()
    calls = [{"tool": "depth_order", "args": {"ids": [3, 4]}}]
    with_tool = build_rollout("The cups are 3 and 4. I compare depth.", [(calls, run_plan(twin, calls))], [3])
    direct = build_rollout("A knife cuts bread: id 1.", [], [1])

    def item(item_id: str, query: str, answer: list[int], category: str, level: int, program: dict,
             teacher: str) -> dict:
        gt = [{"frame": 0, "mask": encode_mask(twin.union_mask(answer, 0))}]
        return {"id": item_id, "split": "train", "scene_id": "tiny-scene", "twin": twin.to_dict(), "query": query,
                "is_sentence": False, "category": category, "level": level, "program": program,
                "answer_ids": answer, "teacher": teacher, "holdout": None,
                "meta": {"gt_masks": gt, "noise_level": 0.0, "teacher_iou": 1.0}}

    near_cup = {"steps": [{"id": "cups", "op": "labels", "labels": ["cup"]},
                          {"id": "near", "op": "extreme", "in": "cups", "by": "depth", "order": "min"}],
                "answer": "near"}
    knife = {"steps": [{"id": "k", "op": "labels", "labels": ["knife"]}], "answer": "k"}
    return [item("cup", "the cup closest to me", [3], "spatial", 2, near_cup, with_tool),
            item("knife", "what can I cut bread with", [1], "semantic", 1, knife, direct)]


def memorize_chains(folder: str | Path, items: list[dict], *, steps: int = 120, lr: float = 1e-2, seed: int = 0) -> Path:
    """Fully fine-tune the tiny model in ``folder`` until it reproduces the items' teacher chains; saves in place.

    Gives smoke tests a policy that really writes ``<plan>`` and stops at ``</plan>``, so
    tool rounds and inserted ``<results>`` happen during RL rollouts.
    """
    import torch

    from fastreasonseg.data.items import as_item
    from fastreasonseg.distill.models import build_messages, load_policy
    from fastreasonseg.distill.sft import tokenize_chain

    torch.manual_seed(seed)
    model, tokenizer = load_policy(str(folder))
    batches = []
    for item in items:
        view = as_item(item)
        chain = tokenize_chain(tokenizer, build_messages(view.twin, view.query, tokenizer), view.teacher or "")
        ids = torch.tensor([chain.input_ids])
        labels = ids.clone()
        labels[0, torch.tensor(chain.assistant_masks) == 0] = -100
        batches.append((ids, labels))
    optimizer = torch.optim.AdamW(model.parameters(), lr=lr)
    model.train()
    for _ in range(steps):
        for ids, labels in batches:
            model(input_ids=ids, labels=labels).loss.backward()
            optimizer.step()
            optimizer.zero_grad()
    model.save_pretrained(folder)
    return Path(folder)
