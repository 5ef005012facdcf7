"""A tiny random-initialised chat model (Llama architecture) saved to a folder, for training smoke tests.

The tokenizer is a byte-level BPE trained in milliseconds on protocol-like text, with a
ChatML template and ``<|im_end|>`` as EOS/pad like SmolLM2; the model is a 2-layer
Llama with hidden size 32. Both are written with ``save_pretrained`` so tests load them
through the same :func:`fastreasonseg.distill.models.load_policy` path as real models.
Nothing is downloaded.
"""

from __future__ import annotations

from pathlib import Path

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
                         seed: int = 0) -> Path:
    """Write a tiny tokenizer + random Llama to ``folder`` and return it."""
    import torch
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast

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
    config = LlamaConfig(vocab_size=len(tokenizer), hidden_size=hidden_size, intermediate_size=2 * hidden_size,
                         num_hidden_layers=layers, num_attention_heads=2, num_key_value_heads=1,
                         max_position_embeddings=4096, eos_token_id=tokenizer.eos_token_id,
                         pad_token_id=tokenizer.pad_token_id, bos_token_id=tokenizer.bos_token_id,
                         tie_word_embeddings=True)
    model = LlamaForCausalLM(config)
    model.generation_config.eos_token_id = tokenizer.eos_token_id
    model.generation_config.pad_token_id = tokenizer.pad_token_id
    model.save_pretrained(folder)
    return folder
