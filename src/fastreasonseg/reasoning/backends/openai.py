"""OpenAI-compatible HTTP endpoints (vLLM, SGLang, Ollama, hosted APIs) for large teachers and judges.

Continuing a partial assistant turn (needed to resume after ``</plan>``) is not part of the
OpenAI chat API, so two modes are offered:

- ``mode="continue"`` (default): ``POST {base_url}/chat/completions`` with the partial turn
  as a final assistant message and the extra body ``{"continue_final_message": true,
  "add_generation_prompt": false}``. vLLM and SGLang honour these fields and return only
  the continuation; Ollama continues a trailing assistant message on its own. Hosted APIs
  that ignore them start a fresh reply instead: use them for judges, not for rollouts.
- ``mode="completions"``: ``POST {base_url}/completions`` with the prompt rendered on the
  client from a chat template (ChatML by default, or ``chat_template``), for servers that
  expose raw completions.

Servers strip the stop string from the text; it is put back from vLLM's ``stop_reason``
field or, failing that, from which protocol tag is open, so ``Generation.text`` always
ends with the stop string like the local backends.

Robustness: per-request timeout; retries with exponential backoff (honouring
``Retry-After``) on timeouts, connection errors, 429 and 5xx; other errors and exhausted
retries come back as ``Generation(stop_reason="error", error=...)``, never as an exception.
``complete_many`` runs requests on a thread pool bounded by ``concurrency`` (a semaphore
bounds callers that use ``complete`` from their own threads too). The API key is read from
the environment variable named by ``api_key_env`` (default ``OPENAI_API_KEY``), if set.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from fastreasonseg.reasoning.backends.base import Generation, GenerationRequest, Message, ReasonerBackend
from fastreasonseg.reasoning.backends.local import render_chat_template

MODES = ("continue", "completions")
RETRY_STATUS = frozenset({408, 409, 429, 500, 502, 503, 504})
CHATML_TEMPLATE = (
    "{% for message in messages %}{{ '<|im_start|>' + message['role'] + '\\n' + message['content'] + '<|im_end|>\\n' }}"
    "{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{% endif %}"
)


@dataclass
class OpenAIBackendConfig:
    """An OpenAI-compatible endpoint. ``base_url`` ends before ``/chat/completions`` (e.g. ``http://host:8000/v1``)."""

    model: str
    base_url: str = "http://127.0.0.1:8000/v1"
    mode: str = "continue"
    api_key_env: str = "OPENAI_API_KEY"
    timeout_s: float = 120.0
    max_retries: int = 3
    backoff_s: float = 0.5
    max_backoff_s: float = 20.0
    concurrency: int = 8
    chat_template: str | None = None

    def __post_init__(self) -> None:
        if not self.model:
            raise ValueError("model must be a non-empty model name, e.g. 'Qwen/Qwen3-8B'")
        if not self.base_url.startswith(("http://", "https://")):
            raise ValueError(f"base_url must start with http:// or https://, got {self.base_url!r}")
        self.base_url = self.base_url.rstrip("/")
        if self.mode not in MODES:
            raise ValueError(f"mode must be one of {MODES}, got {self.mode!r}")
        if self.timeout_s <= 0 or self.max_retries < 0 or self.backoff_s < 0 or self.concurrency < 1:
            raise ValueError("need timeout_s > 0, max_retries >= 0, backoff_s >= 0 and concurrency >= 1")


def infer_stop(text: str, stops: Sequence[str]) -> str | None:
    """The stop string a server stripped: the one whose opening tag is open at the end of ``text``."""
    best, best_at = None, -1
    for stop in stops:
        if not stop.startswith("</"):
            continue
        opening = "<" + stop[2:]
        at = text.rfind(opening)
        if at > text.rfind(stop) and at > best_at:
            best, best_at = stop, at
    return best


class OpenAIBackend(ReasonerBackend):
    """Chat or completions requests to an OpenAI-compatible server, with retries and bounded concurrency."""

    supports_batching = True  # the server batches; lockstep rollouts keep it busy

    def __init__(self, config: OpenAIBackendConfig):
        import httpx

        self.config = config
        self.name = f"openai:{config.model}@{config.base_url}"
        headers = {"Content-Type": "application/json"}
        key = os.environ.get(config.api_key_env) if config.api_key_env else None
        if key:
            headers["Authorization"] = f"Bearer {key}"
        self._client = httpx.Client(base_url=config.base_url, headers=headers, timeout=config.timeout_s)
        self._slots = threading.BoundedSemaphore(config.concurrency)
        self._sleep = time.sleep  # replaceable in tests that do not want to wait

    # ------------------------------------------------------------------ request bodies
    def _body(self, request: GenerationRequest) -> tuple[str, dict[str, Any]]:
        body: dict[str, Any] = {"model": self.config.model, "max_tokens": request.max_new_tokens,
                                "temperature": request.temperature}
        if request.stop:
            body["stop"] = list(request.stop)
        if request.seed is not None:
            body["seed"] = request.seed
        if self.config.mode == "completions":
            template = self.config.chat_template or CHATML_TEMPLATE
            body["prompt"] = render_chat_template(template, request.messages) + request.assistant_prefix
            body.update(request.extra)
            return "/completions", body
        messages: list[Message] = list(request.messages)
        if request.assistant_prefix:
            messages.append({"role": "assistant", "content": request.assistant_prefix})
            body["continue_final_message"] = True
            body["add_generation_prompt"] = False
        body["messages"] = messages
        body.update(request.extra)
        return "/chat/completions", body

    # ------------------------------------------------------------------ transport
    def _post(self, path: str, body: dict[str, Any]) -> tuple[dict | None, str | None]:
        """POST with retries; returns (json, None) or (None, error message)."""
        import httpx

        error = "no attempt made"
        for attempt in range(self.config.max_retries + 1):
            retry_after = None
            try:
                response = self._client.post(path, json=body)
            except httpx.TimeoutException:
                error = f"timed out after {self.config.timeout_s:g} s"
            except httpx.TransportError as exc:
                error = f"cannot reach {self.config.base_url}: {type(exc).__name__}: {exc}"
            else:
                if response.status_code == 200:
                    try:
                        return response.json(), None
                    except ValueError:
                        return None, f"server returned non-JSON: {response.text[:200]!r}"
                error = f"HTTP {response.status_code}: {response.text[:300]}"
                if response.status_code not in RETRY_STATUS:
                    return None, error
                retry_after = _retry_after_seconds(response.headers.get("retry-after"))
            if attempt < self.config.max_retries:
                delay = retry_after if retry_after is not None else self.config.backoff_s * 2 ** attempt
                self._sleep(min(delay, self.config.max_backoff_s))
        return None, f"{error} (after {self.config.max_retries + 1} attempts)"

    # ------------------------------------------------------------------ interface
    def complete(self, request: GenerationRequest) -> Generation:
        start = time.perf_counter()
        path, body = self._body(request)
        with self._slots:
            data, error = self._post(path, body)
        seconds = time.perf_counter() - start
        if data is None:
            return Generation("", "error", seconds=seconds, error=error)
        try:
            choice = data["choices"][0]
            text = choice["text"] if self.config.mode == "completions" else (choice["message"].get("content") or "")
        except (KeyError, IndexError, TypeError, AttributeError):
            return Generation("", "error", seconds=seconds, error=f"unexpected response shape: {str(data)[:200]}")
        usage = data.get("usage") or {}
        details = usage.get("prompt_tokens_details") or {}
        finish = choice.get("finish_reason")
        stop_reason = "length" if finish == "length" else "stop"
        if finish != "length" and not any(text.endswith(s) for s in request.stop):
            matched = choice.get("stop_reason")  # vLLM: the stop string that matched
            stop = matched if isinstance(matched, str) and matched in request.stop else \
                infer_stop(request.assistant_prefix + text, request.stop)
            if stop is None:
                stop_reason = "eos"
            else:
                text += stop
        return Generation(text=text, stop_reason=stop_reason, prompt_tokens=int(usage.get("prompt_tokens") or 0),
                          new_tokens=int(usage.get("completion_tokens") or 0),
                          cached_tokens=int(details.get("cached_tokens") or 0), seconds=seconds)

    def complete_many(self, requests: Sequence[GenerationRequest]) -> list[Generation]:
        from concurrent.futures import ThreadPoolExecutor

        if len(requests) <= 1:
            return [self.complete(r) for r in requests]
        with ThreadPoolExecutor(max_workers=min(self.config.concurrency, len(requests))) as pool:
            return list(pool.map(self.complete, requests))

    def close(self) -> None:
        self._client.close()


def _retry_after_seconds(value: str | None) -> float | None:
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        return None  # HTTP-date form: fall back to exponential backoff
