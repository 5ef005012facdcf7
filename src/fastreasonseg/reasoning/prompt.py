"""The reasoner's prompt: system instructions [+ tool contracts], optional worked examples, then twin + query.

Two styles; every rollout, every backend, and the SFT/RL data use this one builder:

``v1`` (base models, and students trained before prompt v2)::

    system:    instructions + the rollout format + tool contracts (image or video list)
    [user/assistant pairs: worked examples]      only with few_shot=True
    user:      "Scene:\\n<twin text>\\nRequest: <query>"

``v2`` (distilled students): a one-sentence instruction, no tool contracts, no examples,
and the compact twin text (``serialize_twin(compact=True)``). A student learns the protocol
and the tools from its training chains and the decoding grammar holds it to them, so the
prose that teaches a base model is dead weight: v2 prompts are about half as long
(measured in docs/RESULTS.md), which is what a CPU pays for per query and per training chain.
An adapter folder says which style it was trained on (:data:`ADAPTER_META`); an adapter
without that file was trained on v1.

Everything that does not depend on the query comes first, so queries on one twin share
the whole prompt up to ``Request:`` and a prefix KV cache encodes the twin once; the
system prompt and the examples are shared by every twin.

The examples exist for the embedded 135M base model before a distilled adapter ships: a
model that small follows a format it has just seen far more reliably than one it is only
told about. They are short (two tiny scenes, one answered directly, one with a
``depth_order`` call) and built at first use from a hand-written twin through the real
serializer and the real tools, so their scene text and ``<results>`` are exactly what the
model will see at run time. A distilled student is trained without them
(``few_shot=False``), which saves ~400 prompt tokens per scene.

Departure from the paper: the paper does not publish its prompt; this one is ours.
"""

from __future__ import annotations

import json
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING

from fastreasonseg.reasoning.backends.base import Message
from fastreasonseg.reasoning.protocol import build_rollout

if TYPE_CHECKING:
    from fastreasonseg.twin.core import DigitalTwin

INSTRUCTIONS = """You find the objects that a request refers to in a scene. The scene lists objects by id.
Reply in this format:
<reason>which objects fit the request and why</reason>
<plan>[tool calls]</plan>  (optional: use tools when the scene text is not enough; the results come back in <results>)
<answer>[ids]</answer>
The answer is a JSON list of object ids from the scene."""

STUDENT_INSTRUCTIONS = ("Find the objects the request refers to. Reply with <reason>, optional <plan> tool calls, "
                        "and <answer>[ids]</answer>.")
PROMPT_STYLES = ("v1", "v2")
# Tools a style does not offer: v1 (base models, students trained before v2) predates the knowledge
# tool, and its prompt and grammar stay exactly what those students were trained and measured on.
EXCLUDED_TOOLS: dict[str, tuple[str, ...]] = {"v1": ("knowledge",), "v2": ()}
ADAPTER_META = "fastreasonseg.json"  # {"prompt": "v2"} in an adapter folder: the style it was trained on


def adapter_prompt_style(adapter: str | Path | None) -> str:
    """The prompt style an adapter was trained on (``v1`` for a folder without :data:`ADAPTER_META`)."""
    if adapter is None:
        return "v1"
    meta = Path(adapter) / ADAPTER_META
    try:
        style = json.loads(meta.read_text(encoding="utf-8")).get("prompt", "v1")
    except (OSError, ValueError, AttributeError):
        return "v1"
    return style if style in PROMPT_STYLES else "v1"


def write_adapter_meta(folder: str | Path, style: str) -> Path:
    """Record in an adapter folder which prompt style it is trained on."""
    from fastreasonseg.io import atomic_write_json

    if style not in PROMPT_STYLES:
        raise ValueError(f"prompt style must be one of {PROMPT_STYLES}, got {style!r}")
    return atomic_write_json(Path(folder) / ADAPTER_META, {"prompt": style}, indent=1)


def user_message(twin_text: str, query: str) -> str:
    return f"Scene:\n{twin_text}\nRequest: {query.strip()}"


def _example_twin() -> DigitalTwin:
    """A tiny kitchen: a knife, a loaf and two cups at different depths."""
    from fastreasonseg.twin.core import DigitalTwin, Frame, Source, make_object

    objects = (
        make_object(1, "knife", 0.9, [300, 260, 420, 290], depth=(0.35, 0.02)),
        make_object(2, "bread", 0.88, [120, 230, 280, 330], depth=(0.4, 0.05)),
        make_object(3, "cup", 0.93, [470, 200, 540, 290], depth=(0.2, 0.03)),
        make_object(4, "cup", 0.9, [60, 120, 110, 190], depth=(0.7, 0.03)),
    )
    return DigitalTwin(source=Source(kind="image", width=640, height=480), frames=(Frame(0, 0.0, objects),))


class PromptBuilder:
    """Builds the chat messages for a query on a twin (see the module docstring for the layout)."""

    def __init__(self, few_shot: bool = True, instructions: str | None = None, style: str = "v1",
                 disabled_tools: tuple[str, ...] = ()):
        if style not in PROMPT_STYLES:
            raise ValueError(f"prompt style must be one of {PROMPT_STYLES}, got {style!r}")
        if style == "v2" and few_shot:
            raise ValueError("prompt v2 is for distilled students and has no worked examples (few_shot=False)")
        self.style = style
        self.few_shot = few_shot
        self.instructions = instructions or (STUDENT_INSTRUCTIONS if style == "v2" else INSTRUCTIONS)
        self.disabled_tools = tuple(disabled_tools)

    def system(self, video: bool) -> str:
        if self.style == "v2":
            return self.instructions
        from fastreasonseg.twin.tools import tool_contracts_text

        return f"{self.instructions}\n{tool_contracts_text(video=video, exclude=self.excluded_tools)}"

    @property
    def excluded_tools(self) -> tuple[str, ...]:
        """Registered tools not offered: the style's own exclusions and the run's disabled tools
        (left out of the prompt and of the decoding grammar)."""
        return tuple(dict.fromkeys((*EXCLUDED_TOOLS[self.style], *self.disabled_tools)))

    def scene_text(self, twin: DigitalTwin, max_tokens: int | None = None, count_tokens=None) -> str:
        """The twin as this style writes it, within ``max_tokens``."""
        from fastreasonseg.twin.serialize import serialize_twin

        return serialize_twin(twin, max_tokens=max_tokens, count_tokens=count_tokens, compact=self.style == "v2")

    @cached_property
    def examples(self) -> list[Message]:
        """Two worked examples, rendered through the real serializer and tools."""
        from fastreasonseg.twin.serialize import serialize_twin
        from fastreasonseg.twin.tools import run_plan

        twin = _example_twin()
        scene = serialize_twin(twin)
        calls = [{"tool": "depth_order", "args": {"ids": [3, 4]}}]
        results = run_plan(twin, calls)
        nearest = results[0]["result"]["near_to_far"][0][0] if results[0].get("ok") else 3
        direct = build_rollout("Bread is cut with a knife. Object 1 is a knife.", [], [1])
        with_tool = build_rollout("The cups are 3 and 4. I compare their depth to find the closer one.",
                                  [(calls, results)], [nearest])
        return [
            {"role": "user", "content": user_message(scene, "what can I cut the bread with?")},
            {"role": "assistant", "content": direct},
            {"role": "user", "content": user_message(scene, "the cup closest to me")},
            {"role": "assistant", "content": with_tool},
        ]

    def messages(self, twin_text: str, query: str, *, video: bool = False) -> list[Message]:
        """System, optional examples, then the scene and the query as the last user message."""
        out: list[Message] = [{"role": "system", "content": self.system(video)}]
        if self.few_shot:
            out.extend(self.examples)
        out.append({"role": "user", "content": user_message(twin_text, query)})
        return out

    def messages_for(self, twin: DigitalTwin, query: str, *, max_tokens: int | None = None,
                     count_tokens=None) -> list[Message]:
        """Convenience for data pipelines: serialise ``twin`` and build the messages."""
        return self.messages(self.scene_text(twin, max_tokens, count_tokens), query, video=twin.is_video)
