"""Validation of the digital twin v1: the error type, the field checker and the cross-field rules.

Imports nothing else from the project, so :mod:`fastreasonseg.twin.core` and
:mod:`fastreasonseg.twin.parse` can both build on it. Every problem is a
``'json.path: message'`` string (``frames[0].objects[2].box: ...``).
"""

from __future__ import annotations

import json
import math
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from fastreasonseg.twin.core import DigitalTwin

SCHEMA = "fastreasonseg.twin/v1"
# Boxes may poke out of the frame by a rounding hair (detectors return float boxes).
BOX_TOLERANCE_PX = 1.0


class TwinValidationError(ValueError):
    """A twin failed validation; ``errors`` lists every problem as 'path: message'."""

    def __init__(self, errors: list[str]):
        self.errors = list(errors)
        shown = self.errors[:8]
        more = f"\n  ... and {len(self.errors) - 8} more" if len(self.errors) > 8 else ""
        super().__init__("invalid digital twin:\n  " + "\n  ".join(shown) + more)


# --------------------------------------------------------------------------- the field checker


class Checker:
    """Collects 'path: message' errors while converting raw JSON values."""

    def __init__(self) -> None:
        self.errors: list[str] = []

    def fail(self, path: str, message: str) -> None:
        self.errors.append(f"{path}: {message}")

    def number(self, value: Any, path: str, *, integer: bool = False, minimum: float | None = None,
               maximum: float | None = None) -> float | int | None:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            self.fail(path, f"expected a {'integer' if integer else 'number'}, got {type(value).__name__} {value!r}"[:160])
            return None
        if isinstance(value, int) and abs(value) > 2**53:
            # float() of a huge JSON integer raises OverflowError; no field needs such values.
            self.fail(path, f"number too large: {str(value)[:30]}...")
            return None
        if integer and not float(value).is_integer():
            self.fail(path, f"expected an integer, got {value!r}")
            return None
        if not math.isfinite(value):
            self.fail(path, f"must be finite, got {value!r}")
            return None
        if minimum is not None and value < minimum:
            self.fail(path, f"must be >= {minimum}, got {value!r}")
            return None
        if maximum is not None and value > maximum:
            self.fail(path, f"must be <= {maximum}, got {value!r}")
            return None
        return int(value) if integer else value

    def mapping(self, value: Any, path: str, allowed: frozenset[str] | None = None) -> dict | None:
        if not isinstance(value, dict):
            self.fail(path, f"expected an object, got {type(value).__name__}")
            return None
        if allowed is not None:
            # Unknown fields would be dropped on the next save: reject them instead of losing data.
            unknown = sorted(str(k) for k in value if k not in allowed)
            if unknown:
                self.fail(path, f"unknown fields {unknown} (allowed: {sorted(allowed)}; put extras in 'attributes')")
        return value

    def sequence(self, value: Any, path: str, length: int | None = None) -> list | None:
        if not isinstance(value, (list, tuple)):
            self.fail(path, f"expected a list, got {type(value).__name__}")
            return None
        if length is not None and len(value) != length:
            self.fail(path, f"expected {length} values, got {len(value)}")
            return None
        return list(value)



# --------------------------------------------------------------------------- rules


def attributes_problem(attributes: Any) -> str | None:
    """Why ``attributes`` would not survive a JSON save/load unchanged, or None."""
    if not isinstance(attributes, dict):
        return f"expected an object, got {type(attributes).__name__}"
    try:
        text = json.dumps(attributes, allow_nan=False)
    except (TypeError, ValueError, RecursionError) as exc:
        return f"must be JSON-serialisable without NaN/inf ({exc})"[:200]
    # json.dumps turns int keys into strings and tuples into lists: that is silent change, not a round trip.
    if json.loads(text) != attributes:
        return "must survive a JSON round trip unchanged (string keys, lists not tuples)"
    return None


def semantic_errors(twin: DigitalTwin) -> list[str]:
    """Cross-field checks that need the whole twin (image size, duplicate ids, frame order)."""
    errors: list[str] = []
    src = twin.source
    if twin.schema != SCHEMA:
        errors.append(f"schema: expected {SCHEMA!r}, got {twin.schema!r}")
    if not twin.frames:
        errors.append("frames: a twin needs at least one frame")
    metadata_problem = attributes_problem(twin.metadata)
    if metadata_problem is not None:
        errors.append(f"metadata: {metadata_problem}")
    if src.kind == "image" and len(twin.frames) > 1:
        errors.append(f"frames: an image twin has exactly one frame, got {len(twin.frames)}")
    if len(twin.frames) > src.num_frames:
        errors.append(f"frames: {len(twin.frames)} frames but source.num_frames is {src.num_frames}")
    previous = -1
    for i, frame in enumerate(twin.frames):
        if frame.index <= previous:
            errors.append(f"frames[{i}].index: frame indices must increase, got {frame.index} after {previous}")
        if frame.index >= src.num_frames:
            errors.append(f"frames[{i}].index: {frame.index} is outside source.num_frames={src.num_frames}")
        previous = frame.index
        seen: set[int] = set()
        for j, obj in enumerate(frame.objects):
            path = f"frames[{i}].objects[{j}]"
            if obj.id in seen:
                errors.append(f"{path}.id: duplicate id {obj.id} in frame {frame.index}")
            seen.add(obj.id)
            x1, y1, x2, y2 = obj.box
            if not all(math.isfinite(v) for v in obj.box):
                errors.append(f"{path}.box: values must be finite, got {list(obj.box)}")
                continue
            if x2 < x1 or y2 < y1:
                errors.append(f"{path}.box: XYXY needs x2 >= x1 and y2 >= y1, got {list(obj.box)}")
            tol = BOX_TOLERANCE_PX
            if x1 < -tol or y1 < -tol or x2 > src.width + tol or y2 > src.height + tol:
                errors.append(f"{path}.box: {list(obj.box)} lies outside the {src.width}x{src.height} image")
            if obj.mask is not None and list(obj.mask["size"]) != [src.height, src.width]:
                errors.append(f"{path}.mask.size: {list(obj.mask['size'])} does not match the source "
                              f"[height, width] = [{src.height}, {src.width}]")
            if not math.isfinite(obj.score) or not 0.0 <= obj.score <= 1.0:
                errors.append(f"{path}.score: must be in [0, 1], got {obj.score}")
            if obj.depth is not None:
                if not (math.isfinite(obj.depth.mean) and 0.0 <= obj.depth.mean <= 1.0):
                    errors.append(f"{path}.depth.mean: must be in [0, 1], got {obj.depth.mean}")
                if not (math.isfinite(obj.depth.std) and obj.depth.std >= 0.0):
                    errors.append(f"{path}.depth.std: must be finite and >= 0, got {obj.depth.std}")
            if not (math.isfinite(obj.area) and obj.area >= 0):
                errors.append(f"{path}.area: must be finite and >= 0, got {obj.area}")
            if not all(math.isfinite(v) for v in obj.centroid):
                errors.append(f"{path}.centroid: values must be finite, got {list(obj.centroid)}")
            problem = attributes_problem(obj.attributes)
            if problem is not None:
                errors.append(f"{path}.attributes: {problem}")
    return errors

