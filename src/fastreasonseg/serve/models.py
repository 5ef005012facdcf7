"""Pydantic response models: the result.json contract of ``docs/DESIGN.md``, plus the service's envelopes.

They exist for the OpenAPI schema (clients and schemathesis read it) and to check every
response the service sends; field names follow ``docs/DESIGN.md`` exactly.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class RLE(_Strict):
    size: list[int] = Field(description="[height, width]")
    counts: str = Field(description="COCO RLE string")


class FrameMask(_Strict):
    index: int
    mask: RLE


class Answer(_Strict):
    object_ids: list[int]


class Timing(_Strict):
    perception_s: float
    reasoning_s: float


class RolloutFailure(_Strict):
    code: str
    message: str


class ToolRound(_Strict):
    plan: str = Field(description="the <plan> text as the model wrote it")
    calls: list[Any] | None = Field(description="the parsed tool calls, null when the plan was not valid JSON")
    results: list[Any] = Field(description="what the runtime inserted in <results>")


class SegmentResult(_Strict):
    """result.json for one query (``docs/DESIGN.md``), then the service's extra fields."""

    query: str
    answer: Answer
    reasoning: str = Field(description="the full rollout text")
    frames: list[FrameMask]
    timing: Timing
    format_ok: bool
    failures: list[RolloutFailure]
    tool_rounds: list[ToolRound]
    notes: list[str] = Field(default_factory=list, description="e.g. that a very large scene was narrowed to candidates")
    overlay_png: str | None = Field(default=None, description="base64 PNG, when overlay=true was asked for")


class ObjectRow(_Strict):
    id: int
    label: str
    score: float
    box: list[float] = Field(description="XYXY pixels, first appearance")
    area: float
    depth: float | None = Field(description="mean normalised depth, 0 nearest")
    frames: int = Field(description="frames the track appears in")


class SceneInfo(_Strict):
    scene_id: str = Field(description="content hash; pass it back as `scene` to skip the upload")
    kind: str
    width: int
    height: int
    num_frames: int
    cached: bool
    objects: list[ObjectRow]


class SegmentResponse(_Strict):
    request_id: str
    scene: SceneInfo
    results: list[SegmentResult]


class TwinResponse(_Strict):
    request_id: str
    scene: SceneInfo
    perception_s: float
    twin: dict[str, Any] = Field(description="the digital twin v1 JSON")


class QueueState(_Strict):
    running: int
    waiting: int
    capacity: int


class Health(_Strict):
    status: str
    queue: QueueState


class DemoInfo(_Strict):
    name: str
    scene_type: str
    suggested_query: str


class Info(_Strict):
    version: str
    reasoner: dict[str, Any]
    perception: dict[str, Any]
    device: str
    versions: dict[str, str | None]
    limits: dict[str, Any]
    demos: list[DemoInfo]
    counters: dict[str, int]
    uptime_s: float


class ErrorBody(_Strict):
    status: int
    message: str
    request_id: str


class ErrorResponse(_Strict):
    error: ErrorBody
