"""GGUF students through llama.cpp (``llama-cpp-python``): the fast decode path on CPU.

The prompt is rendered from the chat template stored in the GGUF (the same template the
transformers tokenizer reads from that file, rendered the same way), tokenised by
llama.cpp, and generated token by token; each request reuses the longest common token prefix
with a sequence already in the KV cache: resuming after ``</plan>`` and the next query on the
same twin encode only the new text. Stop strings are checked on the decoded tail after every
token; end-of-generation tokens end the turn.

Batching (:meth:`LlamaCppBackend.complete_many`, which :meth:`~LlamaCppBackend.complete` calls
with one request): the queries of one scene decode as parallel llama.cpp sequences, up to
``n_seq_max`` (default 8) at a time and the rest in further chunks. Each request goes to the
sequence holding its longest reusable prefix (its own previous turn after ``</plan>``, the
twin for a new query); the prefix the prompts share is encoded once and copied into the
other sequences; each prompt's own rest is prefilled; then every unfinished sequence
advances one token per ``llama_decode``, with its own grammar sampler (a clone of the cached
one), stop strings, budget and seeded generator, by the same per-token rule as one request.
The bookkeeping is in :mod:`~fastreasonseg.reasoning.backends.llamacpp_kv`. The bypass of
``Llama``: it takes no ``n_seq_max``, so the first batch replaces its context with one of
``n_seq_max`` separate streams of ``n_ctx`` cells each (for the embedded 135M model ~23 KB of
f16 cache per cell, so 8 x 4096 cells are ~0.75 GB); programs that never batch keep the small
context. ``Llama.eval`` and ``Llama.generate`` are not used; sequence 0 doubles as the
``Llama`` object's own sequence, so its ``n_tokens`` and ``input_ids`` stay true.
Greedy rollouts equal one-request decoding token for token in this project's tests, but that
is not guaranteed: llama.cpp's CPU kernels compute a one-row matrix product along another path
than a product of several rows, and a decode step of several sequences multiplies the weights
with several rows at once, so its logits differ from a lone sequence's (by up to ~0.7 here)
and can flip a near tie. Prefill is the same either way (``llamacpp_kv.MIN_PREFILL``). In a batch,
``Generation.timing``'s ``prefill_s`` and ``decode_s`` are the batch's wall time while the
request was in it (lockstep); ``prompt_s``, ``grammar_s`` and ``detokenize_s`` are its own.

LoRA adapters: by default (``lora_mode="merged"``) the model loaded is a cached copy with the
adapter merged into its weights (:mod:`~fastreasonseg.reasoning.backends.gguf_merge`: no LoRA
work per token; a bigger file because the merged tensors are Q8_0, whose kernels also prefill
faster than Q4_1). On the shipped student at 2 quiet threads that took the median query from
2.07 to 1.30 s with the same accuracy (docs/RUNTIME.md). ``lora_mode="runtime"`` converts the PEFT
adapter once to a GGUF LoRA adapter (:mod:`~fastreasonseg.reasoning.backends.gguf_lora`, cached
by content hash) that llama.cpp applies on every token.

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
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from fastreasonseg.errors import FrsError
from fastreasonseg.reasoning.backends.base import Generation, GenerationRequest, Message, ReasonerBackend
from fastreasonseg.reasoning.backends.gguf_merge import DEFAULT_LORA_MODE, LORA_MODES, merged_gguf_for
from fastreasonseg.reasoning.backends.llamacpp_build import verify_installed_build
from fastreasonseg.reasoning.backends.llamacpp_kv import MIN_PREFILL, KVSequences, assign_sequences, share_prefix
from fastreasonseg.reasoning.backends.local import find_stop, render_chat_template


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
    lora_mode: str = DEFAULT_LORA_MODE
    # Sequences complete_many decodes together, each with its own n_ctx cells (allocated by the first batch).
    n_seq_max: int = 8

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
        if not 1 <= self.n_seq_max <= min(64, self.n_batch):
            raise ValueError(f"n_seq_max must be in 1..{min(64, self.n_batch)} (at most n_batch), got {self.n_seq_max}; "
                             "1 decodes one request at a time")


@dataclass
class _Decode:
    """One request's decoding state while its sequence is in a batch."""

    index: int  # position in the complete_many call
    prompt: list[int]
    budget: int
    stops: tuple[str, ...]
    longest_stop: int
    temperature: float
    rng: Any  # numpy Generator when sampling, None when greedy
    grammar: Any  # this sequence's own grammar sampler (freed after the batch), or None
    timing: dict[str, float]
    seq: int = -1
    cached: int = 0  # prompt tokens this request did not encode
    new: list[int] = field(default_factory=list)
    text: str = ""
    stop_reason: str | None = None  # set when done
    error: str | None = None
    seconds: float = 0.0

    def finish(self, reason: str, seconds: float) -> None:
        self.stop_reason, self.seconds = reason, seconds

    def generation(self) -> Generation:
        if self.stop_reason == "error":
            return Generation("", "error", prompt_tokens=len(self.prompt), seconds=self.seconds, error=self.error)
        return Generation(text=self.text, stop_reason=self.stop_reason, prompt_tokens=len(self.prompt),
                          new_tokens=len(self.new), cached_tokens=self.cached, seconds=self.seconds,
                          timing={k: round(v, 6) for k, v in self.timing.items()})


class LlamaCppBackend(ReasonerBackend):
    """A llama.cpp model answering :class:`GenerationRequest` s, one or many at once, with prefix reuse.

    ``request.extra["grammar"]`` (GBNF text) constrains decoding (llama.cpp grammar sampler).
    """

    supports_grammar = True
    supports_batching = True  # per instance: False when n_seq_max == 1

    def __init__(self, config: LlamaCppBackendConfig):
        if "LLAMA_CPP_LIB_PATH" not in os.environ:  # the installed build must be one made for this CPU
            verify_installed_build()
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
        self.supports_batching = config.n_seq_max > 1
        self._kv = KVSequences(self.llm._ctx.ctx, 1, self.llm.n_batch, self.llm.n_vocab())
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
        self._kv.clear()
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

    def complete(self, request: GenerationRequest) -> Generation:
        """One request: :meth:`complete_many` of one, on the sequence holding its longest cached prefix."""
        return self.complete_many([request])[0]

    def complete_many(self, requests: Sequence[GenerationRequest]) -> list[Generation]:
        """Decode the requests as parallel llama.cpp sequences, ``n_seq_max`` at a time; results in request order.

        A request that cannot run (too long for its sequence, invalid grammar, llama.cpp
        failing) gets an ``"error"`` Generation; nothing raises. The first call with more than
        one request gives the context its ``n_seq_max`` sequences (see :meth:`_grow`).
        """
        start = time.perf_counter()
        if len(requests) > 1:
            problem = self._grow()
            if problem is not None:
                return [Generation("", "error", seconds=time.perf_counter() - start, error=problem) for _ in requests]
        self._adopt_llama_state()
        results: list[Generation | None] = [None] * len(requests)
        decodes = []
        for index, request in enumerate(requests):
            item = self._begin(index, request, start)
            if isinstance(item, Generation):
                results[index] = item
            else:
                decodes.append(item)
        n_seq = self._kv.n_seq
        for first in range(0, len(decodes), n_seq):
            for decode in self._run(decodes[first:first + n_seq], start):
                results[decode.index] = decode.generation()
        self._publish_llama_state()
        return [r for r in results if r is not None]

    def _begin(self, index: int, request: GenerationRequest, start: float) -> _Decode | Generation:
        """Render and tokenise one request and check it fits; its decoding state, or the error Generation."""
        import llama_cpp
        import numpy as np

        clock = time.perf_counter
        mark = clock()
        try:
            prompt = self.encode(self.render(request.messages, request.assistant_prefix))
        except ValueError as exc:
            return Generation("", "error", seconds=clock() - start, error=f"cannot render the prompt: {exc}")
        # Where the time goes (issue 18's profile): render+tokenize, prefill, per-token decode, grammar, detokenize.
        timing = {"prompt_s": clock() - mark, "prefill_s": 0.0, "decode_s": 0.0, "grammar_s": 0.0, "detokenize_s": 0.0}

        def failed(message: str) -> Generation:
            return Generation("", "error", prompt_tokens=len(prompt), seconds=clock() - start, error=message)

        budget = request.max_new_tokens
        limit = min(self.config.n_ctx, self._kv.n_ctx_seq)
        if len(prompt) + budget > limit:
            return failed(f"prompt of {len(prompt)} tokens + {budget} new exceeds n_ctx {limit}")
        grammar = None
        if request.extra.get("grammar"):
            try:
                # Each sequence advances its own copy of the grammar's state.
                grammar = llama_cpp.llama_sampler_clone(self._grammar_sampler(request.extra["grammar"]))
            except ValueError as exc:
                return failed(f"invalid grammar: {exc}")
            if not grammar:
                return failed("llama.cpp could not copy the grammar sampler")
        stops = tuple(s for s in request.stop if s)
        return _Decode(index=index, prompt=prompt, budget=budget, stops=stops,
                       longest_stop=max((len(s) for s in stops), default=0), temperature=request.temperature,
                       rng=np.random.default_rng(request.seed) if request.temperature > 0 else None,
                       grammar=grammar, timing=timing)

    def _run(self, decodes: list[_Decode], start: float) -> list[_Decode]:
        """Prefill, then decode all unfinished sequences together, one token each per ``llama_decode``."""
        import llama_cpp

        clock = time.perf_counter
        try:
            mark = clock()
            rows = self._prefill(decodes)
            spent = clock() - mark
            for decode in decodes:
                decode.timing["prefill_s"] += spent  # lockstep: each waited for the whole batch's prefill
            active = decodes
            while True:
                for decode, logits in zip(active, rows, strict=True):
                    self._step(decode, logits, start)
                active = [d for d in active if d.stop_reason is None]
                if not active:
                    break
                mark = clock()
                rows = self._kv.step([(d.seq, d.new[-1:]) for d in active])
                spent = clock() - mark
                for decode in active:
                    decode.timing["decode_s"] += spent
        except (RuntimeError, ValueError) as exc:
            self._kv.clear()  # a failed decode leaves the cache uncertain
            for decode in decodes:
                if decode.stop_reason is None:
                    decode.stop_reason, decode.error = "error", f"llama.cpp failed: {exc}"
                    decode.seconds = clock() - start
        finally:
            for decode in decodes:
                if decode.grammar is not None:
                    llama_cpp.llama_sampler_free(decode.grammar)
                    decode.grammar = None
        return decodes

    def _prefill(self, decodes: list[_Decode]) -> list:
        """Put each prompt in a sequence, encoding what they share once; the logits after each prompt."""
        kv = self._kv
        prompts = [d.prompt for d in decodes]
        for decode, (seq, keep) in zip(decodes, assign_sequences(kv.tokens, prompts, self.config.prefix_cache),
                                       strict=True):
            decode.seq, decode.cached = seq, keep
            kv.trim(seq, keep)
        if self.config.prefix_cache and len(decodes) > 1:
            plan = share_prefix(prompts, [d.cached for d in decodes])
            lead = decodes[plan.source]
            if 0 < plan.end - lead.cached < MIN_PREFILL:  # never a lone token (see MIN_PREFILL)
                lead.cached = max(0, plan.end - MIN_PREFILL)
                kv.trim(lead.seq, lead.cached)
            if plan.end > lead.cached:
                kv.prefill(lead.seq, lead.prompt[lead.cached:plan.end], logits=False)
            for index, keep in plan.copies.items():
                kv.copy(lead.seq, decodes[index].seq, keep)
                decodes[index].cached = keep
        # One sequence per llama_decode: a mixed batch is split by llama.cpp into per-sequence pieces whose
        # sizes it picks, and a lone-token piece would change that sequence's logits (see MIN_PREFILL).
        return [kv.prefill(d.seq, d.prompt[len(kv.tokens[d.seq]):]) for d in decodes]

    def _step(self, decode: _Decode, logits, start: float) -> None:
        """Choose one token from ``logits`` and apply the stop rules (sets ``decode.stop_reason`` when done).

        Greedy (or seeded sampling); under a grammar the argmax is checked first and the full
        vocabulary is masked only when the grammar rejects it (llama.cpp's own trick: ~2.5x
        faster than masking every step, which cut decode from ~90 to ~36 tok/s here).
        """
        import llama_cpp
        import numpy as np

        clock = time.perf_counter
        grammar = decode.grammar
        mark = clock()
        if decode.rng is None:
            token = int(np.argmax(logits))
            if grammar is not None and not self._allowed(grammar, token, float(logits[token])):
                token = int(np.argmax(self._masked_logits(grammar, logits)))
        else:
            scores = self._masked_logits(grammar, logits) if grammar is not None else logits
            scaled = (scores - scores.max()) / decode.temperature
            probs = np.exp(scaled)
            token = int(decode.rng.choice(len(logits), p=probs / probs.sum()))
        if grammar is not None:
            llama_cpp.llama_sampler_accept(grammar, token)
        decode.timing["grammar_s"] += clock() - mark  # sampling: argmax and, under a grammar, its checks
        if self._is_end(token):
            decode.finish("eos", clock() - start)
            return
        decode.new.append(token)
        mark = clock()
        previous = len(decode.text)
        decode.text = self.llm.detokenize(decode.new).decode("utf-8", errors="ignore")
        end = find_stop(decode.text, decode.stops, previous - decode.longest_stop) if decode.stops else -1
        decode.timing["detokenize_s"] += clock() - mark
        if end >= 0:
            decode.text = decode.text[:end]
            decode.finish("stop", clock() - start)
        elif len(decode.new) >= decode.budget:
            decode.finish("length", clock() - start)

    # ------------------------------------------------------------------ the context's sequences
    def _grow(self) -> str | None:
        """Give the context ``n_seq_max`` sequences of ``n_ctx`` cells each, the first time a batch arrives.

        llama-cpp-python's ``Llama`` takes no ``n_seq_max``, so its context is replaced by one
        built from the same parameters (and LoRA adapter) with ``n_seq_max`` separate streams.
        Programs that never batch keep the small one-sequence context. Returns an error
        message when llama.cpp cannot build it, None otherwise.
        """
        import llama_cpp
        from llama_cpp._internals import LlamaContext

        n_seq = self.config.n_seq_max
        if self._kv.n_seq >= n_seq:
            return None
        llm = self.llm
        params = type(llm.context_params).from_buffer_copy(llm.context_params)
        params.n_seq_max, params.n_ctx, params.kv_unified = n_seq, self.config.n_ctx * n_seq, False
        try:
            context = LlamaContext(model=llm._model, params=params, verbose=False)
        except ValueError as exc:
            return (f"llama.cpp cannot allocate {n_seq} sequences of {self.config.n_ctx} tokens ({exc}); "
                    "lower n_seq_max or n_ctx")
        if llm._lora_adapter is not None:
            adapters = (llama_cpp.llama_adapter_lora_p_ctypes * 1)(llm._lora_adapter)
            scales = (ctypes.c_float * 1)(llm.lora_scale)
            if llama_cpp.llama_set_adapters_lora(context.ctx, adapters, 1, scales):
                context.close()
                return "llama.cpp could not apply the LoRA adapter to the batch context"
        self._kv.close()
        llm._ctx.close()
        llm._ctx, llm.context_params = context, params
        llm.reset()
        self._kv = KVSequences(context.ctx, n_seq, llm.n_batch, llm.n_vocab())
        return None

    def _adopt_llama_state(self) -> None:
        """Sequence 0 is also the high-level ``Llama``'s: take over what its eval/generate/reset left there."""
        llm = self.llm
        self._kv.tokens[0] = llm.input_ids[: llm.n_tokens].tolist()

    def _publish_llama_state(self) -> None:
        """Leave the ``Llama``'s bookkeeping (``n_tokens``, ``input_ids``) describing sequence 0, never stale."""
        llm = self.llm
        held = self._kv.tokens[0][: len(llm.input_ids)]
        llm.input_ids[: len(held)] = held
        llm.n_tokens = len(held)

    def close(self) -> None:
        self._free_grammars()
        self._kv.close()
        close = getattr(self.llm, "close", None)  # older llama-cpp-python releases have no close()
        if close is not None:
            close()
