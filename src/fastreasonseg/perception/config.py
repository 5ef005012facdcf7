"""The perception stage's one typed config: which models, where they run, and the thresholds.

Every field is validated in ``__post_init__`` with a message that says how to fix it. The
resolved config is saved next to every ``frs twin build`` output (YAML), so a twin folder
records exactly which models and thresholds produced it.

Model fields take a hub id or a local directory (anything ``from_pretrained`` accepts). The
``preset`` (:mod:`fastreasonseg.perception.presets`) fills the models, their input sizes and the
video mode unless they are given: ``quality`` (default) is the paper's models at their own sizes,
OWLv2 base (ensemble checkpoint), SAM 2.1 Hiera-Tiny (the transformers-hosted
``facebook/sam2.1-hiera-tiny``; one checkpoint serves ``Sam2Model`` for images and
``Sam2VideoModel`` for videos) and Depth Anything V2 Small; ``fast`` is the CPU-first choice.
A resolved config always holds concrete values, so a saved config reloads to the same settings.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Any

from fastreasonseg.io import atomic_write_text
from fastreasonseg.perception.presets import PRESET_FIELDS, PRESET_NAMES, PRESETS, preset_values

DEFAULT_DETECTOR = PRESETS["quality"].detector_model
DEFAULT_SEGMENTER = PRESETS["quality"].segmenter_model
DEFAULT_DEPTH_MODEL = PRESETS["quality"].depth_model

DEVICES = ("auto", "cpu", "cuda", "mps")
# "auto": float16 on CUDA, float32 elsewhere (loading.resolve_dtype).
DTYPES = ("auto", "float32", "bfloat16", "float16")
# bf16 autocast of the image encoders; "auto": on a CPU with bf16 arithmetic only (loading.resolve_autocast).
AUTOCAST_MODES = ("auto", "off", "bfloat16")
VIDEO_MODES = ("propagate", "detect")


class _FromPreset:
    """Default of a preset-controlled field: replaced by the preset's value in ``__post_init__``."""

    def __repr__(self) -> str:
        return "<from preset>"


FROM_PRESET: Any = _FromPreset()


@dataclass
class PerceptionConfig:
    """Perception settings for image and video twins.

    Detection: OWLv2 scores every label of the vocabulary (the shipped default list plus
    ``vocabulary_file`` and ``extra_labels``, plus nouns from the query when ``query_nouns``);
    boxes above ``score_threshold`` go through class-aware NMS at ``nms_iou``, then boxes or
    masks of different labels overlapping by more than ``merge_iou`` are merged into one object
    (the other labels kept in ``attributes["alt_labels"]``). At most ``max_objects`` objects.

    Video: every ``frame_stride``-th frame is processed, at most ``max_frames`` of them; OWLv2
    runs on every ``keyframe_interval``-th processed frame and a detection whose box overlaps
    no tracked object by ``match_iou`` starts a new track; a track absent (SAM 2 object score
    below zero) for more than ``max_missing_frames`` processed frames ends. ``video_mode``
    ``propagate`` segments the frames between key frames with SAM 2's video memory; ``detect``
    prompts the image predictor with each track's predicted box, and a track the detector has
    not confirmed on more than ``max_unconfirmed_keyframes`` consecutive key frames ends.

    Precision: ``dtype`` is the weights' dtype (``auto``: float16 on CUDA, float32 elsewhere);
    ``autocast`` runs the expensive encoders in bfloat16 on top of it (see
    :mod:`fastreasonseg.perception.presets`). The ``propagate`` mode's SAM 2 video model always runs
    in the weights' dtype: its memory attention and mask decoder are the thresholded part.
    """

    preset: str = "quality"
    detector_model: str = FROM_PRESET
    segmenter_model: str = FROM_PRESET
    # None turns depth off: objects then carry no depth statistics.
    depth_model: str | None = FROM_PRESET
    # Square input side of the detector / segmenter and the depth model's short side, in pixels;
    # None: the checkpoint's own (960 OWLv2, 1024 SAM 2, 518 Depth Anything V2).
    detector_input_size: int | None = FROM_PRESET
    segmenter_input_size: int | None = FROM_PRESET
    depth_input_size: int | None = FROM_PRESET
    video_mode: str = FROM_PRESET
    # Autocast of the models' heavy passes (OWLv2 and SAM 2 image encoders, Depth Anything) to bfloat16
    # while the weights stay in ``dtype``; heads whose outputs are thresholded run in the weights' dtype.
    autocast: str = FROM_PRESET
    device: str = "auto"
    dtype: str = "auto"
    # Use only weights already on disk (never contact the hub).
    local_files_only: bool = False

    # vocabulary
    use_default_vocabulary: bool = True
    vocabulary_file: str | None = None
    extra_labels: tuple[str, ...] = ()
    query_nouns: bool = True
    prompt_template: str = "a photo of a {}"

    # detection and merging
    score_threshold: float = 0.2
    nms_iou: float = 0.5
    merge_iou: float = 0.85
    max_objects: int = 50
    min_mask_area: int = 16

    # video
    frame_stride: int = 1
    max_frames: int | None = None
    keyframe_interval: int = 5
    match_iou: float = 0.4
    max_missing_frames: int = 5
    max_unconfirmed_keyframes: int = 1
    # Keep SAM 2 tracking state (memory features, object pointers) on the CPU even when the
    # models run on an accelerator: this is what keeps long videos from filling GPU memory.
    offload_state_to_cpu: bool = True
    # False: depth only on key frames (cheaper); objects on the other frames then carry no depth.
    depth_every_frame: bool = True

    def __post_init__(self) -> None:
        if self.preset not in PRESET_NAMES:
            raise ValueError(f"invalid perception config:\n  preset must be one of {', '.join(PRESET_NAMES)} "
                             f"(quality: the paper's models at full size; fast: CPU-first), got {self.preset!r}")
        for name, value in preset_values(self.preset).items():
            if getattr(self, name) is FROM_PRESET:
                setattr(self, name, value)
        self.extra_labels = tuple(str(label).strip() for label in self.extra_labels if str(label).strip())
        problems: list[str] = []
        for name in ("detector_model", "segmenter_model"):
            value = getattr(self, name)
            if not isinstance(value, str) or not value.strip():
                problems.append(f"{name} must be a hub id or a local directory, got {value!r}")
        if self.depth_model is not None and (not isinstance(self.depth_model, str) or not self.depth_model.strip()):
            problems.append(f"depth_model must be a hub id, a local directory or null (no depth), got {self.depth_model!r}")
        if self.depth_model is not None and self.depth_model.lower() in ("none", "off", "null", ""):
            self.depth_model = None
        if self.device not in DEVICES and not str(self.device).startswith("cuda:"):
            problems.append(f"device must be one of {', '.join(DEVICES)} (or cuda:N), got {self.device!r}")
        if self.dtype not in DTYPES:
            problems.append(f"dtype must be one of {', '.join(DTYPES)}, got {self.dtype!r}")
        if self.autocast not in AUTOCAST_MODES:
            problems.append(f"autocast must be one of {', '.join(AUTOCAST_MODES)} (auto: bfloat16 on a CPU with "
                            f"bf16 arithmetic, off elsewhere), got {self.autocast!r}")
        if self.video_mode not in VIDEO_MODES:
            problems.append(f"video_mode must be one of {', '.join(VIDEO_MODES)}, got {self.video_mode!r}")
        for name, multiple in (("detector_input_size", 16), ("segmenter_input_size", 32), ("depth_input_size", 14)):
            value = getattr(self, name)
            if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value < multiple
                                      or value % multiple):
                problems.append(f"{name} must be a positive multiple of {multiple} pixels or null (the model's "
                                f"own), got {value!r}")
        if "{}" not in self.prompt_template:
            problems.append(f"prompt_template must contain '{{}}' where the label goes, got {self.prompt_template!r}")
        for name in ("score_threshold", "nms_iou", "merge_iou", "match_iou"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0.0 <= value <= 1.0:
                problems.append(f"{name} must be a number in [0, 1], got {value!r}")
        for name, minimum in (("max_objects", 1), ("min_mask_area", 0), ("frame_stride", 1), ("keyframe_interval", 1),
                              ("max_missing_frames", 0), ("max_unconfirmed_keyframes", 0)):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
                problems.append(f"{name} must be an integer >= {minimum}, got {value!r}")
        if self.max_frames is not None and (isinstance(self.max_frames, bool) or not isinstance(self.max_frames, int)
                                            or self.max_frames < 1):
            problems.append(f"max_frames must be a positive integer or null (all frames), got {self.max_frames!r}")
        if self.vocabulary_file is not None and not Path(self.vocabulary_file).expanduser().is_file():
            problems.append(f"vocabulary_file {self.vocabulary_file!r} does not exist (one label per line)")
        if not self.use_default_vocabulary and not self.vocabulary_file and not self.extra_labels and not self.query_nouns:
            problems.append("no labels to detect: keep use_default_vocabulary, or give vocabulary_file / extra_labels")
        if problems:
            raise ValueError("invalid perception config:\n  " + "\n  ".join(problems))

    # ------------------------------------------------------------------ (de)serialisation
    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["extra_labels"] = list(self.extra_labels)
        return out

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> PerceptionConfig:
        """Build from a plain dict (YAML/JSON); unknown keys are an error naming the valid ones."""
        if not isinstance(data, dict):
            raise ValueError(f"a perception config must be a mapping, got {type(data).__name__}")
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise ValueError(f"unknown perception config keys {unknown}; valid keys: {sorted(known)}")
        values = dict(data)
        if "extra_labels" in values and values["extra_labels"] is not None:
            values["extra_labels"] = tuple(values["extra_labels"])
        return cls(**values)

    @classmethod
    def load(cls, path: str | Path) -> PerceptionConfig:
        import yaml

        path = Path(path)
        try:
            data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
        except (OSError, yaml.YAMLError) as exc:
            raise ValueError(f"cannot read perception config {path}: {exc}") from None
        return cls.from_dict(data)

    def save(self, path: str | Path) -> Path:
        """Write the config as YAML atomically."""
        import yaml

        return atomic_write_text(path, yaml.safe_dump(self.to_dict(), sort_keys=False))

    def with_overrides(self, **overrides: Any) -> PerceptionConfig:
        """A copy with the non-None ``overrides`` applied (and validated).

        A new ``preset`` replaces the fields that still hold the old preset's values; fields
        set to something else (a local model folder, another size) are kept.
        """
        values = self.to_dict()
        preset = overrides.get("preset")
        if preset is not None and preset != self.preset:
            old = preset_values(self.preset)
            preset_values(preset)  # an unknown preset is an error before anything changes
            for name in PRESET_FIELDS:
                if values[name] == old[name]:
                    del values[name]
        values.update({k: v for k, v in overrides.items() if v is not None})
        return PerceptionConfig.from_dict(values)

    def twin_metadata(self, ran: dict[str, str] | None = None) -> dict[str, Any]:
        """What a twin records about its perception (``DigitalTwin.metadata["perception"]``).

        ``ran`` is what these settings resolved to on the machine that built the twin
        (:meth:`~fastreasonseg.perception.components.ComponentSet.placement_record`: device, weight
        dtype, autocast), since ``auto`` means bf16 autocast on one CPU and float32 on another.
        """
        record = {"preset": self.preset, **{name: getattr(self, name) for name in PRESET_FIELDS}, "dtype": self.dtype}
        if ran:
            record["ran"] = dict(ran)
        return {"perception": record}
