"""GGUF students through llama.cpp (``llama-cpp-python``): the fast decode path on CPU.

The prompt is rendered from the chat template stored in the GGUF (the same template the
transformers tokenizer reads from that file, rendered the same way), tokenised by
llama.cpp, and generated token by token; like ``Llama.generate``, each request reuses the longest
common token prefix with the sequence already in its KV cache: resuming after ``</plan>``
and the next query on the same twin encode only the new text. Stop strings are checked on
the decoded tail after every token; end-of-generation tokens end the turn.

LoRA adapters: a PEFT adapter is converted once to a GGUF LoRA adapter
(:mod:`~fastreasonseg.reasoning.backends.gguf_lora`, cached by content hash) and applied by
llama.cpp at load time; with ``lora_mode="merged"`` the model loaded instead is a cached copy with
the adapter merged into its weights (:mod:`~fastreasonseg.reasoning.backends.gguf_merge`: no
LoRA work per token, a bigger file because the merged tensors are Q8_0).

Threads: ``n_threads`` (decode) and ``n_threads_batch`` (prefill) default to the cores that are
free when the model loads (:func:`free_cores`: the usable cores, at most 4, minus those busy
over a 0.1 s sample of ``/proc/stat``; at least 1). llama.cpp's threads spin while waiting,
so oversubscribed threads collapse: on this project's 2-core machine under a load average of
~10, prefill ran at 62 tok/s on 1 thread vs 20 tok/s on 2, and decode at 58 vs 8.5 tok/s;
on quiet cores (AVX2 EPYC, the embedded student with its adapter) decode ran at 64 tok/s on
2 threads vs 39 on 1. The 1-minute load average, the earlier rule, still reads "busy" a
minute after a job stopped, which cost a quiet machine half its decode speed. Measured
numbers and the choice of this backend as the default for GGUF students are in
:mod:`fastreasonseg.reasoning.loader`.
"""

from __future__ import annotations

import ctypes
import math
import os
import time
from dataclasses import dataclass
from pathlib import Path

from fastreasonseg.errors import FrsError
from fastreasonseg.reasoning.backends.base import Generation, GenerationRequest, Message, ReasonerBackend
from fastreasonseg.reasoning.backends.gguf_merge import LORA_MODES, merged_gguf_for
from fastreasonseg.reasoning.backends.local import find_stop, render_chat_template, reusable_prefix


def _cpu_times() -> tuple[int, int] | None:
    """(idle, total) jiffies of all CPUs from /proc/stat, or None off Linux."""
    try:
        with open("/proc/stat", encoding="ascii") as handle:
            fields = [int(v) for v in handle.readline().split()[1:]]
    except (OSError, ValueError):
        return None
    return fields[3] + (fields[4] if len(fields) > 4 else 0), sum(fields[:8])


def free_cores(sample_s: float = 0.1, limit: int = 4) -> int:
    """Cores this process may use (at most ``limit``) that are not busy right now; at least 1.

    Busy is measured over ``sample_s`` seconds of /proc/stat (the machine's CPUs, in cores);
    where that is unavailable the 1-minute load average stands in.
    """
    try:
        usable = len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        usable = os.cpu_count() or 1
    machine = os.cpu_count() or usable
    first = _cpu_times()
    if first is not None:
        time.sleep(sample_s)
        second = _cpu_times()
        if second is not None and second[1] > first[1]:
            busy = machine * (1 - (second[0] - first[0]) / (second[1] - first[1]))
            return max(1, min(limit, usable, round(usable - busy + 0.25)))
    try:
        busy = os.getloadavg()[0]
    except OSError:
        busy = 0.0
    return max(1, min(limit, round(usable - busy + 0.25)))


@dataclass
class LlamaCppBackendConfig:
    """A GGUF model file for llama.cpp, with an optional PEFT LoRA adapter directory."""

    model_path: str
    adapter: str | None = None
    n_ctx: int = 4096
    n_threads: int | None = None  # None: free_cores() at load
    n_threads_batch: int | None = None  # None: free_cores() at load
    n_batch: int = 512
    prefix_cache: bool = True
    seed: int = 0
    # "runtime": llama.cpp adds the adapter on every token; "merged": load a cached copy of the model with the
    # adapter merged into its weights (gguf_merge; merged tensors stored as Q8_0, see there why).
    lora_mode: str = "runtime"

    def __post_init__(self) -> None:
        if not str(self.model_path).endswith(".gguf"):
            raise ValueError(f"model_path must be a .gguf file, got {self.model_path!r}")
        if self.n_ctx < 64:
            raise ValueError(f"n_ctx must be >= 64, got {self.n_ctx}")
        for name in ("n_threads", "n_threads_batch"):
            value = getattr(self, name)
            if value is not None and value < 1:
                raise ValueError(f"{name} must be >= 1 or None, got {value}")
        if self.lora_mode not in LORA_MODES:
            raise ValueError(f"lora_mode must be one of {LORA_MODES}, got {self.lora_mode!r}")


class LlamaCppBackend(ReasonerBackend):
    """A llama.cpp model answering :class:`GenerationRequest` s with its built-in prefix reuse.

    ``request.extra["grammar"]`` (GBNF text) constrains decoding (llama.cpp grammar sampler).
    """

    supports_grammar = True

    def __init__(self, config: LlamaCppBackendConfig):
        try:
            from llama_cpp import Llama
        except ImportError as exc:
            raise FrsError(f"llama-cpp-python is not installed ({exc}); install it (see the Makefile) or use "
                           "--backend hf") from None
        path = Path(config.model_path)
        if not path.is_file():
            raise FrsError(f"GGUF model {path} not found")
        lora_path, model_file = None, path
        if config.adapter and config.lora_mode == "merged":
            model_file = merged_gguf_for(config.adapter, path)
        elif config.adapter:
            from fastreasonseg.reasoning.backends.gguf_lora import gguf_adapter_for

            lora_path = str(gguf_adapter_for(config.adapter, path))
        self.config = config
        self.name = f"llama.cpp:{path.name}" + (f"+{Path(config.adapter).name}" if config.adapter else "")
        self.name += "[merged]" if model_file != path else ""
        try:
            free = free_cores() if config.n_threads is None or config.n_threads_batch is None else 1
            self.threads = (config.n_threads or free, config.n_threads_batch or free)
            self.llm = Llama(model_path=str(model_file), n_ctx=config.n_ctx, n_batch=config.n_batch,
                             n_threads=self.threads[0], n_threads_batch=self.threads[1],
                             lora_path=lora_path, seed=config.seed, verbose=False)
        except (ValueError, RuntimeError) as exc:
            adapter = f" with adapter {config.adapter}" if config.adapter else ""
            raise FrsError(f"llama.cpp cannot load {model_file}{adapter}: {exc}") from None
        metadata = self.llm.metadata
        self.chat_template = metadata.get("tokenizer.chat_template")
        if not self.chat_template:
            raise FrsError(f"{path.name} has no chat template in its metadata; a reasoner needs a chat model")
        self._grammars: dict[str, object] = {}
        self._bos = self._token_text(self.llm.token_bos())
        self._eos = self._token_text(self.llm.token_eos())

    def _token_text(self, token: int) -> str:
        if token is None or token < 0:
            return ""
        return self.llm.detokenize([token], special=True).decode("utf-8", errors="replace")

    def render(self, messages: list[Message], assistant_prefix: str = "") -> str:
        return render_chat_template(self.chat_template, messages, bos_token=self._bos, eos_token=self._eos) + assistant_prefix

    def encode(self, text: str) -> list[int]:
        # The template writes any BOS itself; special=True parses its control tokens (<|im_start|>, ...).
        return self.llm.tokenize(text.encode("utf-8"), add_bos=False, special=True)

    def count_tokens(self, text: str) -> int:
        return len(self.llm.tokenize(text.encode("utf-8"), add_bos=False, special=False))

    def clear_cache(self) -> None:
        self.llm.reset()

    # ------------------------------------------------------------------ grammar
    def _grammar_sampler(self, text: str):
        """A llama.cpp grammar sampler for ``text``, reset to its start (cached: one per twin and state)."""
        import llama_cpp

        cache = self._grammars
        sampler = cache.get(text)
        if sampler is None:
            if len(cache) >= 32:
                self._free_grammars()
            sampler = llama_cpp.llama_sampler_init_grammar(self.llm._model.vocab, text.encode("utf-8"), b"root")
            if not sampler:
                raise ValueError("llama.cpp rejected the grammar (see its log for the line)")
            cache[text] = sampler
        else:
            llama_cpp.llama_sampler_reset(sampler)
        return sampler

    def _free_grammars(self) -> None:
        import llama_cpp

        for sampler in self._grammars.values():
            llama_cpp.llama_sampler_free(sampler)
        self._grammars.clear()

    def _allowed(self, sampler, token: int, logit: float) -> bool:
        """Whether the grammar accepts ``token`` next: apply it to a one-candidate array."""
        import llama_cpp

        one = (llama_cpp.llama_token_data * 1)(llama_cpp.llama_token_data(token, logit, 0.0))
        array = llama_cpp.llama_token_data_array(data=one, size=1, selected=-1, sorted=False)
        llama_cpp.llama_sampler_apply(sampler, ctypes.byref(array))
        return math.isfinite(one[0].logit)

    def _masked_logits(self, sampler, logits):
        """Logits with every token the grammar forbids set to -inf (applies the grammar to the whole vocabulary)."""
        import llama_cpp
        import numpy as np

        data = np.empty(len(logits), dtype=np.dtype([("id", np.intc), ("logit", np.single), ("p", np.single)],
                                                     align=True))
        data["id"] = np.arange(len(logits), dtype=np.intc)
        data["logit"] = logits
        data["p"] = 0.0
        array = llama_cpp.llama_token_data_array(data=data.ctypes.data_as(llama_cpp.llama_token_data_p),
                                                 size=len(logits), selected=-1, sorted=False)
        llama_cpp.llama_sampler_apply(sampler, ctypes.byref(array))
        return data["logit"]

    # ------------------------------------------------------------------ generation
    def _is_end(self, token: int) -> bool:
        import llama_cpp

        return bool(llama_cpp.llama_vocab_is_eog(self.llm._model.vocab, token))

    def _prepare(self, prompt: list[int]) -> int:
        """Keep the reusable cached prefix (as ``Llama.generate`` does), evaluate the rest; return tokens reused."""
        llm = self.llm
        keep = reusable_prefix(llm._input_ids[: llm.n_tokens].tolist(), prompt) if self.config.prefix_cache else 0
        if keep > 0 and llm._ctx.kv_cache_seq_rm(-1, keep, -1):
            llm.n_tokens = keep
        else:
            llm.reset()
            keep = 0
        llm.eval(prompt[keep:])
        return keep

    def complete(self, request: GenerationRequest) -> Generation:
        """Greedy (or seeded sampling) decode; under a grammar the argmax is checked first and the full
        vocabulary is masked only when the grammar rejects it (llama.cpp's own trick: ~2.5x faster than
        masking every step, which cut decode from ~90 to ~36 tok/s here)."""
        import llama_cpp
        import numpy as np

        clock = time.perf_counter
        start = clock()
        prompt = self.encode(self.render(request.messages, request.assistant_prefix))
        budget = request.max_new_tokens
        # Where the time goes (issue 18's profile): render+tokenize, prefill, per-token decode, grammar, detokenize.
        timing = {"prompt_s": clock() - start, "prefill_s": 0.0, "decode_s": 0.0, "grammar_s": 0.0, "detokenize_s": 0.0}

        def failed(message: str) -> Generation:
            return Generation("", "error", prompt_tokens=len(prompt), seconds=time.perf_counter() - start, error=message)

        if len(prompt) + budget > self.config.n_ctx:
            return failed(f"prompt of {len(prompt)} tokens + {budget} new exceeds n_ctx {self.config.n_ctx}")
        grammar = None
        if request.extra.get("grammar"):
            try:
                grammar = self._grammar_sampler(request.extra["grammar"])
            except ValueError as exc:
                return failed(f"invalid grammar: {exc}")
        rng = np.random.default_rng(request.seed) if request.temperature > 0 else None
        stops = tuple(s for s in request.stop if s)
        longest_stop = max((len(s) for s in stops), default=0)
        n_vocab = self.llm.n_vocab()
        new: list[int] = []
        text = ""
        stop_reason = "length"
        try:
            mark = clock()
            cached = self._prepare(prompt)
            timing["prefill_s"] += clock() - mark
            while True:
                mark = clock()
                logits = np.ctypeslib.as_array(self.llm._ctx.get_logits(), shape=(n_vocab,))
                if rng is None:
                    token = int(np.argmax(logits))
                    if grammar is not None and not self._allowed(grammar, token, float(logits[token])):
                        token = int(np.argmax(self._masked_logits(grammar, logits)))
                else:
                    scores = self._masked_logits(grammar, logits) if grammar is not None else logits
                    scaled = (scores - scores.max()) / request.temperature
                    probs = np.exp(scaled)
                    token = int(rng.choice(n_vocab, p=probs / probs.sum()))
                if grammar is not None:
                    llama_cpp.llama_sampler_accept(grammar, token)
                timing["grammar_s"] += clock() - mark  # sampling: argmax and, under a grammar, its checks
                if self._is_end(token):
                    stop_reason = "eos"
                    break
                new.append(token)
                mark = clock()
                previous = len(text)
                text = self.llm.detokenize(new).decode("utf-8", errors="ignore")
                end = find_stop(text, stops, previous - longest_stop) if stops else -1
                timing["detokenize_s"] += clock() - mark
                if end >= 0:
                    text = text[:end]
                    stop_reason = "stop"
                    break
                if len(new) >= budget:
                    break
                mark = clock()
                self.llm.eval([token])
                timing["decode_s"] += clock() - mark
        except (RuntimeError, ValueError) as exc:
            return failed(f"llama.cpp failed: {exc}")
        return Generation(text=text, stop_reason=stop_reason, prompt_tokens=len(prompt), new_tokens=len(new),
                          cached_tokens=cached, seconds=clock() - start,
                          timing={k: round(v, 6) for k, v in timing.items()})

    def close(self) -> None:
        self._free_grammars()
        close = getattr(self.llm, "close", None)  # older llama-cpp-python releases have no close()
        if close is not None:
            close()
