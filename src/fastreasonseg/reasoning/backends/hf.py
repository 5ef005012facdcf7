"""Local Hugging Face causal LMs (Qwen3, Llama, SmolLM2 from GGUF, ...) with a token-level prefix KV cache.

Loads by hub id, local directory or a GGUF file (transformers ``gguf_file=``, de-quantised
to float32, then cast to ``dtype``), optionally with a PEFT adapter that is merged into the
weights (merging costs nothing at load and removes the adapter's extra matmuls from every
token). Independent requests (several queries on one twin) decode together in
:meth:`HFBackend.complete_many`: the shared prefix is encoded once, rows decode in lockstep.

The decode loop is hand-written rather than ``model.generate`` because the backend must
know exactly which tokens sit in the KV cache after every call: it keeps one
``DynamicCache`` plus its token ids and, for each request, crops the cache to the longest
common prefix with the new prompt and feeds only the rest. Resuming after ``</plan>``
therefore encodes only the inserted ``<results>``, and a second query on the same twin
encodes only the query. Stop strings are checked on the decoded tail after every token.
Greedy when ``temperature == 0``; sampling uses a seeded ``torch.Generator``.

Speed on this project's 2-core CPU (SmolLM2-135M from its GGUF, ~1,100-token prompt, other
jobs running): a cold query took 7.9 s in bf16 vs 9.2 s in fp32, five queries on one scene
(batched) 3.2 s vs 7.1 s per query (table in :mod:`fastreasonseg.reasoning.loader`). bf16
is the default (``dtype="auto"``); ``dtype="float32"`` is there for exact comparison with
training. Under heavy CPU contention (another torch or llama.cpp process spinning on the
same cores) both slow down by an order of magnitude, so benchmark on a quiet machine.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from fastreasonseg.errors import FrsError
from fastreasonseg.reasoning.backends.base import Generation, GenerationRequest, Message, ReasonerBackend
from fastreasonseg.reasoning.backends.local import common_prefix_length, find_stop, reusable_prefix

DTYPES = ("auto", "float32", "bfloat16", "float16")


@dataclass
class HFBackendConfig:
    """How to load a transformers causal LM for reasoning.

    ``model`` is a hub id or a local directory; ``gguf_file`` names a GGUF inside it (or is
    a full path to one). ``dtype="auto"`` means bfloat16 on CPU (see module docstring).
    """

    model: str
    gguf_file: str | None = None
    adapter: str | None = None
    merge_adapter: bool = True
    dtype: str = "auto"
    device: str = "cpu"
    prefix_cache: bool = True
    max_context: int | None = None
    threads: int | None = None
    chat_template_kwargs: dict[str, Any] = field(default_factory=lambda: {"enable_thinking": False})

    def __post_init__(self) -> None:
        if self.dtype not in DTYPES:
            raise ValueError(f"dtype must be one of {DTYPES}, got {self.dtype!r}")
        if self.gguf_file is not None:
            gguf = Path(self.gguf_file)
            if gguf.is_absolute() or gguf.parent != Path("."):
                # A full path to the GGUF: transformers wants (directory, file name).
                self.model, self.gguf_file = str(gguf.parent), gguf.name
        if self.threads is not None and self.threads < 1:
            raise ValueError(f"threads must be >= 1, got {self.threads}")
        if self.max_context is not None and self.max_context < 16:
            raise ValueError(f"max_context must be >= 16 tokens, got {self.max_context}")


def _torch_dtype(name: str, device: str):
    import torch

    if name == "auto":
        # CPU: bf16 prefill is ~2-3x faster than fp32 on AVX-512-BF16/AMX CPUs; GPUs: bf16 as well.
        return torch.bfloat16
    return getattr(torch, name)


class HFBackend(ReasonerBackend):
    """A transformers model + tokenizer answering :class:`GenerationRequest` s with prefix-cache reuse."""

    name = "transformers"
    supports_batching = True

    def __init__(self, model: Any, tokenizer: Any, config: HFBackendConfig):
        if getattr(tokenizer, "chat_template", None) is None:
            raise FrsError(f"the tokenizer of {config.model} has no chat template; a reasoner needs a chat/instruct "
                           "model (or set tokenizer.chat_template)")
        self.model = model
        self.tokenizer = tokenizer
        self.config = config
        self.name = f"transformers:{config.gguf_file or config.model}"
        self._cache = None
        self._cache_ids: list[int] = []
        eos = getattr(model.generation_config, "eos_token_id", None) if hasattr(model, "generation_config") else None
        eos_ids = set(eos if isinstance(eos, (list, tuple)) else [eos] if eos is not None else [])
        if tokenizer.eos_token_id is not None:
            eos_ids.add(tokenizer.eos_token_id)
        self.eos_ids = frozenset(int(i) for i in eos_ids)

    # ------------------------------------------------------------------ loading
    @classmethod
    def from_pretrained(cls, config: HFBackendConfig) -> HFBackend:
        """Load model and tokenizer (and merge the adapter); errors name the path and the likely fix."""
        import torch
        from transformers import AutoModelForCausalLM, AutoTokenizer

        if config.threads:
            torch.set_num_threads(config.threads)
        kwargs: dict[str, Any] = {"gguf_file": config.gguf_file} if config.gguf_file else {}
        dtype = _torch_dtype(config.dtype, config.device)
        # GGUF: load in float32, which de-quantises into plain Linear layers, then cast. Asking
        # transformers for bf16 keeps the weights packed and, without its optional GGUF kernel,
        # unpacks them in every forward (minutes per query here instead of seconds).
        load_dtype = torch.float32 if config.gguf_file else dtype
        try:
            tokenizer = AutoTokenizer.from_pretrained(config.model, **kwargs)
            model = AutoModelForCausalLM.from_pretrained(config.model, dtype=load_dtype, **kwargs)
        except (OSError, ValueError, KeyError) as exc:
            where = f"{config.model}/{config.gguf_file}" if config.gguf_file else config.model
            raise FrsError(f"cannot load reasoner model {where!r}: {exc}. Give a local model directory, a .gguf file, "
                           "or a hub id that is cached locally (there may be no network).") from None
        if config.adapter:
            model = load_adapter(model, config.adapter, merge=config.merge_adapter)
        model.to(device=config.device, dtype=dtype)
        model.eval()
        return cls(model, tokenizer, config)

    # ------------------------------------------------------------------ prompt
    def render(self, messages: list[Message], assistant_prefix: str = "") -> str:
        """The exact prompt text: chat template with the generation prompt, then the partial assistant turn."""
        try:
            prompt = self.tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True,
                                                        **self.config.chat_template_kwargs)
        except TypeError:  # templates that reject unknown kwargs
            prompt = self.tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
        return prompt + assistant_prefix

    def encode(self, text: str) -> list[int]:
        # The chat template already wrote any BOS it wants; the tokenizer must not add another.
        return list(self.tokenizer(text, add_special_tokens=False)["input_ids"])

    def count_tokens(self, text: str) -> int:
        return len(self.encode(text))

    # ------------------------------------------------------------------ cache
    def clear_cache(self) -> None:
        self._cache = None
        self._cache_ids = []

    def _prepare_cache(self, prompt_ids: list[int]) -> int:
        """Crop the cache to the reusable prefix of ``prompt_ids``; return how many tokens it still holds."""
        from transformers import DynamicCache

        keep = reusable_prefix(self._cache_ids, prompt_ids) if (self.config.prefix_cache and self._cache is not None) else 0
        if keep == 0:
            self._cache = DynamicCache(config=self.model.config)
            self._cache_ids = []
            return 0
        drop = len(self._cache_ids) - keep
        if drop > 0:
            try:
                self._cache.crop(-drop)
            except (RuntimeError, ValueError):  # e.g. sliding-window layers that cannot roll back
                self._cache = DynamicCache(config=self.model.config)
                self._cache_ids = []
                return 0
            del self._cache_ids[keep:]
        return keep

    def _forward(self, token_ids: list[int]):
        import torch

        input_ids = torch.tensor([token_ids], dtype=torch.long, device=self.model.device)
        out = self.model(input_ids=input_ids, past_key_values=self._cache, use_cache=True, logits_to_keep=1)
        self._cache = out.past_key_values
        self._cache_ids.extend(token_ids)
        return out.logits[0, -1].float()

    # ------------------------------------------------------------------ generation
    def complete(self, request: GenerationRequest) -> Generation:
        import torch

        start = time.perf_counter()
        prompt_ids = self.encode(self.render(request.messages, request.assistant_prefix))
        budget = request.max_new_tokens
        if self.config.max_context is not None and len(prompt_ids) + budget > self.config.max_context:
            return Generation("", "error", prompt_tokens=len(prompt_ids), seconds=time.perf_counter() - start,
                              error=f"prompt of {len(prompt_ids)} tokens + {budget} new exceeds max_context "
                                    f"{self.config.max_context}")
        generator = None
        if request.temperature > 0:
            generator = torch.Generator(device="cpu")
            generator.manual_seed(request.seed if request.seed is not None else 0)
        stops = tuple(s for s in request.stop if s)
        longest_stop = max((len(s) for s in stops), default=0)
        new_ids: list[int] = []
        text = ""
        stop_reason = "length"
        with torch.inference_mode():
            cached = self._prepare_cache(prompt_ids)
            logits = self._forward(prompt_ids[cached:])
            for _ in range(budget):
                if generator is None:
                    token = int(torch.argmax(logits))
                else:
                    probs = torch.softmax(logits / request.temperature, dim=-1)
                    token = int(torch.multinomial(probs, 1, generator=generator))
                if token in self.eos_ids:
                    stop_reason = "eos"
                    break
                new_ids.append(token)
                previous = len(text)
                text = self.tokenizer.decode(new_ids, skip_special_tokens=True)
                end = find_stop(text, stops, previous - longest_stop) if stops else -1
                if end >= 0:
                    text = text[:end]
                    stop_reason = "stop"
                    break
                if len(new_ids) == budget:
                    break  # the last token is returned but need not be fed: nothing would read its logits
                logits = self._forward([token])
        if not self.config.prefix_cache:
            self.clear_cache()
        return Generation(text=text, stop_reason=stop_reason, prompt_tokens=len(prompt_ids), new_tokens=len(new_ids),
                          cached_tokens=cached, seconds=time.perf_counter() - start)

    def complete_many(self, requests: Sequence[GenerationRequest]) -> list[Generation]:
        """Independent requests decoded together, one forward pass per step for the whole batch.

        The prompts' longest common token prefix (system prompt + twin, for queries on one
        twin) goes through the prefix cache once; each row's remainder is left-padded to the
        same length (masked), then all rows decode in lockstep and finished rows leave the
        batch. Afterwards the cache holds the shared prefix again, so the next batch or
        query on the same twin starts from it.
        """
        if len(requests) <= 1:
            return [self.complete(r) for r in requests]
        import torch

        start = time.perf_counter()
        prompts = [self.encode(self.render(r.messages, r.assistant_prefix)) for r in requests]
        if self.config.max_context is not None:
            too_long = [i for i, (p, r) in enumerate(zip(prompts, requests, strict=True))
                        if len(p) + r.max_new_tokens > self.config.max_context]
            if too_long:  # let the one-at-a-time path report each error exactly as complete() does
                return [self.complete(r) for r in requests]
        shared = min(len(p) for p in prompts) - 1  # every row keeps at least one token of its own
        for other in prompts[1:]:
            shared = min(shared, common_prefix_length(prompts[0], other))
        with torch.inference_mode():
            cached = self._prepare_cache(prompts[0][:shared + 1])  # +1: _prepare_cache keeps one token to feed
            if cached < shared:
                self._forward(prompts[0][cached:shared])
            prefix = self._cache_ids[:]
            saved = [(layer.keys, layer.values) for layer in self._cache.layers]
            try:
                generations = self._decode_batch(requests, [p[shared:] for p in prompts], shared)
            finally:
                # Give the cache back its single shared-prefix sequence (update() made new tensors).
                for layer, (keys, values) in zip(self._cache.layers, saved, strict=True):
                    layer.keys, layer.values = keys, values
                self._cache_ids = prefix
        seconds = time.perf_counter() - start
        for row, (generation, prompt) in enumerate(zip(generations, prompts, strict=True)):
            # Row 0 paid for the shared prefix beyond what was cached; the other rows reused all of it.
            generation.prompt_tokens, generation.seconds = len(prompt), seconds
            generation.cached_tokens = cached if row == 0 else shared
        if not self.config.prefix_cache:
            self.clear_cache()
        return generations

    def _decode_batch(self, requests: Sequence[GenerationRequest], suffixes: list[list[int]],
                      offset: int) -> list[Generation]:
        import torch

        rows = len(requests)
        width = max(len(s) for s in suffixes)
        pad = self.tokenizer.pad_token_id if self.tokenizer.pad_token_id is not None else 0
        ids = torch.tensor([[pad] * (width - len(s)) + s for s in suffixes], dtype=torch.long)
        own = torch.tensor([[0] * (width - len(s)) + [1] * len(s) for s in suffixes], dtype=torch.long)
        mask = torch.cat([torch.ones(rows, offset, dtype=torch.long), own], dim=1)
        positions = (offset + own.cumsum(dim=1) - 1).clamp(min=offset)
        self._cache.batch_repeat_interleave(rows)
        out = self.model(input_ids=ids, attention_mask=mask, position_ids=positions, past_key_values=self._cache,
                         use_cache=True, logits_to_keep=1)
        logits = out.logits[:, -1].float()
        next_position = positions[:, -1] + 1
        generators = []
        for request in requests:
            generator = None
            if request.temperature > 0:
                generator = torch.Generator(device="cpu")
                generator.manual_seed(request.seed if request.seed is not None else 0)
            generators.append(generator)
        new_ids: list[list[int]] = [[] for _ in requests]
        texts = [""] * rows
        reasons = ["length"] * rows
        active = list(range(rows))  # request index of each batch row still decoding
        while active:
            tokens, keep = [], []
            for row, index in enumerate(active):
                request = requests[index]
                if generators[index] is None:
                    token = int(torch.argmax(logits[row]))
                else:
                    probs = torch.softmax(logits[row] / request.temperature, dim=-1)
                    token = int(torch.multinomial(probs, 1, generator=generators[index]))
                if token in self.eos_ids:
                    reasons[index] = "eos"
                    continue
                new_ids[index].append(token)
                previous = len(texts[index])
                texts[index] = self.tokenizer.decode(new_ids[index], skip_special_tokens=True)
                stops = tuple(s for s in request.stop if s)
                end = find_stop(texts[index], stops, previous - max((len(s) for s in stops), default=0)) if stops else -1
                if end >= 0:
                    texts[index] = texts[index][:end]
                    reasons[index] = "stop"
                    continue
                if len(new_ids[index]) >= request.max_new_tokens:
                    continue
                tokens.append(token)
                keep.append(row)
            if not keep:
                break
            if len(keep) < len(active):
                selected = torch.tensor(keep, dtype=torch.long)
                self._cache.batch_select_indices(selected)
                mask, next_position = mask[selected], next_position[selected]
                active = [active[row] for row in keep]
            mask = torch.cat([mask, torch.ones(len(active), 1, dtype=torch.long)], dim=1)
            out = self.model(input_ids=torch.tensor(tokens, dtype=torch.long)[:, None], attention_mask=mask,
                             position_ids=next_position[:, None], past_key_values=self._cache, use_cache=True)
            logits = out.logits[:, -1].float()
            next_position = next_position + 1
        return [Generation(text=texts[i], stop_reason=reasons[i], new_tokens=len(new_ids[i])) for i in range(rows)]

    def close(self) -> None:
        self.clear_cache()


def load_adapter(model: Any, adapter: str, *, merge: bool = True) -> Any:
    """Apply a PEFT adapter directory to ``model`` (merged into the weights unless ``merge=False``)."""
    from peft import PeftModel

    path = Path(adapter)
    if not (path / "adapter_config.json").is_file():
        raise FrsError(f"adapter {adapter!r} is not a PEFT adapter directory (no adapter_config.json)")
    try:
        peft_model = PeftModel.from_pretrained(model, str(path))
    except (OSError, ValueError, KeyError, RuntimeError) as exc:
        raise FrsError(f"cannot apply adapter {adapter!r} to the model: {exc}") from None
    return peft_model.merge_and_unload() if merge else peft_model
