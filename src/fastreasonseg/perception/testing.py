"""Tiny random-initialised perception models, saved like real checkpoints, for tests and offline smoke runs.

``save_tiny_models(folder)`` writes an OWLv2 (with a character-level CLIP tokenizer and the
PIL image processor), a SAM 2 video checkpoint (which ``Sam2Model`` also loads, like the
released ``facebook/sam2.1-*`` checkpoints) and a Depth Anything model, each a few hundred
thousand parameters with small input sizes, and returns a :class:`PerceptionConfig` pointing
at the three folders. They load through the same ``from_pretrained`` path as the real models.
Their outputs are random: use them to test mechanics, not quality.

``released_sizes=True`` gives them the released checkpoints' input sizes (OWLv2 960, SAM 2
1024, Depth Anything 518 px) at tiny widths, so a preset's input sizes apply to them unchanged;
:func:`install_in_hub_cache` puts such a folder into a Hugging Face cache under a hub id, so
tests can load ``google/owlv2-base-patch16-ensemble`` and friends offline through the real
hub-id path. ``save_tiny_owlvit`` writes an OWL-ViT (v1) detector the same way.
"""

from __future__ import annotations

from pathlib import Path

from fastreasonseg.perception.config import PerceptionConfig

SAM_SIZE = 128
OWL_SIZE = 64
DEPTH_SIZE = 56


def tiny_clip_tokenizer(max_length: int = 16):
    """A byte-level CLIP tokenizer whose vocabulary is single characters (no merges, no download)."""
    from transformers import CLIPTokenizer
    from transformers.convert_slow_tokenizer import bytes_to_unicode

    vocab: dict[str, int] = {}
    for char in bytes_to_unicode().values():
        vocab.setdefault(char, len(vocab))
        vocab.setdefault(char + "</w>", len(vocab))
    # Special tokens after the characters: OWLv2 treats a query whose first token id is 0 as padding.
    vocab["<|startoftext|>"] = len(vocab)
    vocab["<|endoftext|>"] = len(vocab)
    return CLIPTokenizer(vocab=vocab, merges=[], model_max_length=max_length)


def _tiny_owl_parts(size: int, patch: int) -> tuple[dict, dict, object]:
    tokenizer = tiny_clip_tokenizer()
    text = dict(vocab_size=len(tokenizer.get_vocab()), hidden_size=32, intermediate_size=64, num_hidden_layers=1,
                num_attention_heads=2, max_position_embeddings=16, bos_token_id=tokenizer.bos_token_id,
                eos_token_id=tokenizer.eos_token_id, pad_token_id=tokenizer.pad_token_id)
    vision = dict(hidden_size=32, intermediate_size=64, num_hidden_layers=1, num_attention_heads=2, image_size=size,
                  patch_size=patch)
    return text, vision, tokenizer


def save_tiny_owlv2(folder: str | Path, seed: int = 0, size: int = OWL_SIZE) -> Path:
    import torch
    from transformers import Owlv2Config, Owlv2ForObjectDetection, Owlv2Processor
    from transformers.models.owlv2.image_processing_pil_owlv2 import Owlv2ImageProcessorPil

    folder = Path(folder)
    text, vision, tokenizer = _tiny_owl_parts(size, 16)
    torch.manual_seed(seed)
    model = Owlv2ForObjectDetection(Owlv2Config(text_config=text, vision_config=vision, projection_dim=32)).eval()
    processor = Owlv2Processor(image_processor=Owlv2ImageProcessorPil(size={"height": size, "width": size}),
                               tokenizer=tokenizer)
    model.save_pretrained(folder)
    processor.save_pretrained(folder)
    return folder


def save_tiny_owlvit(folder: str | Path, seed: int = 0, size: int = 96) -> Path:
    """A tiny OWL-ViT v1 (patch 32, like ``google/owlvit-base-patch32``), squashing images to ``size`` px."""
    import torch
    from transformers import OwlViTConfig, OwlViTForObjectDetection, OwlViTProcessor
    from transformers.models.owlvit.image_processing_pil_owlvit import OwlViTImageProcessorPil

    folder = Path(folder)
    text, vision, tokenizer = _tiny_owl_parts(size, 32)
    torch.manual_seed(seed)
    model = OwlViTForObjectDetection(OwlViTConfig(text_config=text, vision_config=vision, projection_dim=32)).eval()
    image_processor = OwlViTImageProcessorPil(size={"height": size, "width": size},
                                              crop_size={"height": size, "width": size})
    OwlViTProcessor(image_processor=image_processor, tokenizer=tokenizer).save_pretrained(folder)
    model.save_pretrained(folder)
    return folder


def tiny_sam2_video_config(size: int = SAM_SIZE):
    from transformers import Sam2VideoConfig

    backbone = dict(model_type="sam2_hiera_det_model", hidden_size=16, num_attention_heads=1, image_size=[size, size],
                    blocks_per_stage=[1, 1, 2, 1], embed_dim_per_stage=[16, 32, 64, 128],
                    num_attention_heads_per_stage=[1, 1, 1, 1], window_size_per_stage=[4, 4, 4, 4],
                    global_attention_blocks=[3], window_positional_embedding_background_size=[2, 2])
    vision = dict(model_type="sam2_vision_model", backbone_config=backbone, backbone_channel_list=[128, 64, 32, 16],
                  backbone_feature_sizes=[[size // 4] * 2, [size // 8] * 2, [size // 16] * 2], fpn_hidden_size=128)
    # SAM 2's memory attention hard-codes a 64-channel memory; the hidden size must be a
    # multiple of it (128 here) for the object-pointer split to line up.
    return Sam2VideoConfig(
        vision_config=vision, prompt_encoder_config=dict(hidden_size=128, image_size=size, patch_size=16),
        mask_decoder_config=dict(hidden_size=128, mlp_dim=64, num_attention_heads=2, iou_head_hidden_dim=32),
        image_size=size, memory_attention_hidden_size=128, memory_attention_num_layers=1,
        memory_attention_feed_forward_hidden_size=64, memory_attention_rope_feat_sizes=[size // 16, size // 16],
        memory_encoder_hidden_size=128, memory_encoder_output_channels=64, mask_downsampler_embed_dim=128,
        memory_fuser_embed_dim=128, memory_fuser_intermediate_dim=64)


def save_tiny_sam2(folder: str | Path, seed: int = 0, size: int = SAM_SIZE) -> Path:
    import torch
    from transformers import Sam2VideoModel

    folder = Path(folder)
    torch.manual_seed(seed)
    Sam2VideoModel(tiny_sam2_video_config(size)).eval().save_pretrained(folder)
    return folder


def save_tiny_depth_anything(folder: str | Path, seed: int = 0, size: int = DEPTH_SIZE) -> Path:
    import torch
    from transformers import DepthAnythingConfig, DepthAnythingForDepthEstimation
    from transformers.models.dpt.image_processing_pil_dpt import DPTImageProcessorPil

    folder = Path(folder)
    backbone = dict(model_type="dinov2", image_size=size, patch_size=14, hidden_size=32, num_hidden_layers=4,
                    num_attention_heads=2, intermediate_size=64, out_indices=[1, 2, 3, 4], reshape_hidden_states=False)
    config = DepthAnythingConfig(backbone_config=backbone, reassemble_hidden_size=32, neck_hidden_sizes=[8, 16, 32, 32],
                                 fusion_hidden_size=16, head_hidden_size=8)
    torch.manual_seed(seed)
    DepthAnythingForDepthEstimation(config).eval().save_pretrained(folder)
    # Depth Anything V2's preprocessing: keep aspect ratio, multiple of 14, bicubic, ImageNet statistics.
    DPTImageProcessorPil(size={"height": size, "width": size}, keep_aspect_ratio=True, ensure_multiple_of=14,
                         resample=3, do_pad=False, image_mean=[0.485, 0.456, 0.406],
                         image_std=[0.229, 0.224, 0.225]).save_pretrained(folder)
    return folder


# The released checkpoints' input sizes (OWLv2 ensemble, SAM 2.1, Depth Anything V2).
RELEASED_SIZES = {"owlv2": 960, "sam2": 1024, "depth": 518}


def save_tiny_models(folder: str | Path, seed: int = 0, *, released_sizes: bool = False,
                     **config_overrides: object) -> PerceptionConfig:
    """Save the three tiny models under ``folder`` and return a CPU config that uses them."""
    folder = Path(folder)
    sizes = RELEASED_SIZES if released_sizes else {"owlv2": OWL_SIZE, "sam2": SAM_SIZE, "depth": DEPTH_SIZE}
    detector = save_tiny_owlv2(folder / "owlv2", seed, sizes["owlv2"])
    segmenter = save_tiny_sam2(folder / "sam2", seed, sizes["sam2"])
    depth = save_tiny_depth_anything(folder / "depth", seed, sizes["depth"])
    values = dict(detector_model=str(detector), segmenter_model=str(segmenter), depth_model=str(depth), device="cpu")
    values.update(config_overrides)
    return PerceptionConfig(**values)


def install_in_hub_cache(folder: str | Path, repo_id: str, cache_dir: str | Path) -> Path:
    """Copy a saved model ``folder`` into the Hugging Face cache ``cache_dir`` as hub repo ``repo_id``.

    The layout is huggingface_hub's (``models--owner--name/snapshots/<commit>/`` and
    ``refs/main``), so ``from_pretrained(repo_id)`` finds it with no network. Returns the snapshot.
    """
    import shutil

    repo = Path(cache_dir) / ("models--" + repo_id.replace("/", "--"))
    commit = "0" * 40
    snapshot = repo / "snapshots" / commit
    shutil.copytree(folder, snapshot, dirs_exist_ok=True)
    (repo / "refs").mkdir(parents=True, exist_ok=True)
    (repo / "refs" / "main").write_text(commit)
    return snapshot


def first_prompt_box(session, obj_id: int, image_size: int, width: int, height: int) -> tuple[int, tuple[float, ...]]:
    """(frame, XYXY box in ``width`` x ``height`` pixels) of the box prompt a SAM 2 video object was added with.

    For test oracles that map a SAM 2 object back to the scene object its prompt covered; reads
    the transformers inference session, whose point inputs hold the box corners on the
    ``image_size`` grid.
    """
    frame, prompt = next(iter(session.point_inputs_per_obj[session.obj_id_to_idx(obj_id)].items()))
    x1, y1, x2, y2 = prompt["point_coords"].reshape(4).tolist()
    return frame, (x1 * width / image_size, y1 * height / image_size, x2 * width / image_size, y2 * height / image_size)
