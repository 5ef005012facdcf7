"""Reading images and streaming video frames (OpenCV and PIL; no torchvision).

A video is read frame by frame with ``cv2.VideoCapture`` and never held in memory: skipped
frames (``stride``) are only grabbed, not decoded to RGB. A folder of images (DAVIS
``JPEGImages/<video>/``) is a video whose frames are the files in name order.
Unreadable input raises :class:`MediaError` with the path and the reason.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np

IMAGE_SUFFIXES = frozenset({".jpg", ".jpeg", ".png", ".bmp", ".webp", ".tif", ".tiff"})
VIDEO_SUFFIXES = frozenset({".mp4", ".avi", ".mov", ".mkv", ".webm", ".m4v", ".mpg", ".mpeg", ".gif"})


class MediaError(ValueError):
    """An input image or video that cannot be read."""


def media_kind(path: str | Path) -> str:
    """'image', 'video' or 'frames' (a folder of images); MediaError for anything else."""
    path = Path(path)
    if path.is_dir():
        if frame_files(path):
            return "frames"
        raise MediaError(f"{path}: folder holds no images ({', '.join(sorted(IMAGE_SUFFIXES))})")
    if not path.exists():
        raise MediaError(f"{path}: no such file")
    suffix = path.suffix.lower()
    if suffix in IMAGE_SUFFIXES:
        return "image"
    if suffix in VIDEO_SUFFIXES:
        return "video"
    raise MediaError(f"{path}: unsupported file type {suffix or '(none)'}; images: {', '.join(sorted(IMAGE_SUFFIXES))};"
                     f" videos: {', '.join(sorted(VIDEO_SUFFIXES))}")


def frame_files(folder: str | Path) -> list[Path]:
    """Image files directly inside ``folder``, sorted by name (DAVIS frame order)."""
    return sorted(p for p in Path(folder).iterdir() if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)


def read_image(path: str | Path) -> np.ndarray:
    """An image file as (H, W, 3) uint8 RGB, EXIF orientation applied."""
    from PIL import Image, ImageOps, UnidentifiedImageError

    try:
        with Image.open(path) as image:
            image = ImageOps.exif_transpose(image)
            return np.asarray(image.convert("RGB"))
    except Image.DecompressionBombError as exc:
        raise MediaError(f"{path}: image too large to decode safely ({exc})") from None
    except (OSError, UnidentifiedImageError, ValueError) as exc:
        raise MediaError(f"{path}: cannot read image ({exc})") from None


@dataclass(frozen=True)
class VideoInfo:
    """What the container reports. ``num_frames`` may be approximate for some codecs."""

    width: int
    height: int
    fps: float | None
    num_frames: int


@dataclass(frozen=True)
class VideoFrame:
    index: int  # index in the source video
    time: float  # seconds
    image: np.ndarray  # (H, W, 3) uint8 RGB


def probe_video(path: str | Path) -> VideoInfo:
    """Size, fps and frame count of a video file or frame folder."""
    path = Path(path)
    if path.is_dir():
        files = frame_files(path)
        if not files:
            raise MediaError(f"{path}: folder holds no images")
        first = read_image(files[0])
        return VideoInfo(width=first.shape[1], height=first.shape[0], fps=None, num_frames=len(files))
    import cv2

    capture = cv2.VideoCapture(str(path))
    try:
        if not capture.isOpened():
            raise MediaError(f"{path}: cannot open video (missing, corrupt or unsupported codec)")
        width = int(capture.get(cv2.CAP_PROP_FRAME_WIDTH))
        height = int(capture.get(cv2.CAP_PROP_FRAME_HEIGHT))
        fps = float(capture.get(cv2.CAP_PROP_FPS)) or None
        count = max(0, int(capture.get(cv2.CAP_PROP_FRAME_COUNT)))
    finally:
        capture.release()
    if width <= 0 or height <= 0:
        raise MediaError(f"{path}: video reports no frame size (corrupt or unsupported)")
    return VideoInfo(width=width, height=height, fps=fps if fps and np.isfinite(fps) and fps > 0 else None,
                     num_frames=count)


def iter_frames(path: str | Path, *, stride: int = 1, max_frames: int | None = None) -> Iterator[VideoFrame]:
    """Yield every ``stride``-th frame (at most ``max_frames``), one at a time.

    Memory stays at one decoded frame whatever the video's length.
    """
    if stride < 1:
        raise ValueError(f"stride must be >= 1, got {stride}")
    path = Path(path)
    if path.is_dir():
        yield from _iter_folder(path, stride, max_frames)
        return
    import cv2

    capture = cv2.VideoCapture(str(path))
    if not capture.isOpened():
        raise MediaError(f"{path}: cannot open video (missing, corrupt or unsupported codec)")
    fps = float(capture.get(cv2.CAP_PROP_FPS)) or 0.0
    emitted = 0
    index = 0
    try:
        while max_frames is None or emitted < max_frames:
            if index % stride:
                if not capture.grab():  # skip without converting to RGB
                    break
                index += 1
                continue
            ok, bgr = capture.read()
            if not ok or bgr is None:
                break
            rgb = cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)
            time = index / fps if fps > 0 else float(index)
            yield VideoFrame(index=index, time=time, image=rgb)
            emitted += 1
            index += 1
    finally:
        capture.release()
    if emitted == 0:
        raise MediaError(f"{path}: no frames could be decoded")


def _iter_folder(folder: Path, stride: int, max_frames: int | None) -> Iterator[VideoFrame]:
    files = frame_files(folder)
    if not files:
        raise MediaError(f"{folder}: folder holds no images")
    emitted = 0
    for index in range(0, len(files), stride):
        if max_frames is not None and emitted >= max_frames:
            break
        # Frame folders carry no fps: time is the frame index (as for fps-less twins elsewhere).
        yield VideoFrame(index=index, time=float(index), image=read_image(files[index]))
        emitted += 1
