"""The digital twin: the validated scene type, its compact LLM text, and the tools over it."""

from fastreasonseg.twin.core import (
    SCHEMA,
    Depth,
    DigitalTwin,
    Frame,
    Source,
    TwinObject,
    TwinValidationError,
    make_object,
    validate_twin,
)
from fastreasonseg.twin.masks import box_to_mask, decode_mask, encode_mask

__all__ = [
    "SCHEMA",
    "Depth",
    "DigitalTwin",
    "Frame",
    "Source",
    "TwinObject",
    "TwinValidationError",
    "box_to_mask",
    "decode_mask",
    "encode_mask",
    "make_object",
    "validate_twin",
]
