"""Checking uploads before anything reads them: size, declared type, magic bytes, decodability, video length.

The kind of an upload (twin JSON, image, video) is decided by its first bytes, never by the
client's file name; the client's name and path are never used on disk. Uploads are written
to a private folder (mode 0700) under random names with a suffix chosen from the sniffed
kind, and deleted once perception has read them.

Every problem raises :class:`UploadError` with an HTTP status (413 too big, 415 wrong type,
422 corrupt or too long) and a message for the client.
"""

from __future__ import annotations

import os
import tempfile
import uuid
from dataclasses import dataclass
from pathlib import Path

from fastreasonseg.serve.config import ServeConfig

# Declared content types we accept; application/octet-stream and a missing type mean "sniff it".
IMAGE_TYPES = frozenset({"image/png", "image/jpeg", "image/jpg", "image/webp", "image/bmp", "image/gif", "image/tiff"})
VIDEO_TYPES = frozenset({"video/mp4", "video/webm", "video/x-matroska", "video/quicktime", "video/x-msvideo",
                         "video/avi", "video/mpeg"})
JSON_TYPES = frozenset({"application/json", "text/json", "text/plain"})
NEUTRAL_TYPES = frozenset({"", "application/octet-stream"})


class UploadError(Exception):
    """An upload the service refuses; ``status`` is the HTTP status to answer with."""

    def __init__(self, status: int, message: str):
        super().__init__(message)
        self.status = status
        self.message = message


@dataclass(frozen=True)
class Sniffed:
    kind: str  # "twin", "image" or "video"
    suffix: str  # file suffix the decoders expect (".png", ".mp4", ...)


def sniff(data: bytes) -> Sniffed | None:
    """What the bytes are, from their magic numbers; None when unrecognised."""
    head = data[:64]
    stripped = data[:512].lstrip(b"\xef\xbb\xbf \t\r\n")
    if stripped.startswith(b"{"):
        return Sniffed("twin", ".json")
    if head.startswith(b"\x89PNG\r\n\x1a\n"):
        return Sniffed("image", ".png")
    if head.startswith(b"\xff\xd8\xff"):
        return Sniffed("image", ".jpg")
    if head[:4] == b"RIFF" and head[8:12] == b"WEBP":
        return Sniffed("image", ".webp")
    if head.startswith(b"BM"):
        return Sniffed("image", ".bmp")
    if head[:4] in (b"II*\x00", b"MM\x00*"):
        return Sniffed("image", ".tiff")
    if head.startswith((b"GIF87a", b"GIF89a")):
        return Sniffed("video", ".gif")  # animated or not, perception reads GIFs as videos
    if head[4:8] == b"ftyp":
        return Sniffed("video", ".mov" if head[8:10] == b"qt" else ".mp4")
    if head.startswith(b"\x1a\x45\xdf\xa3"):
        return Sniffed("video", ".webm" if b"webm" in data[:64] else ".mkv")
    if head[:4] == b"RIFF" and head[8:12] == b"AVI ":
        return Sniffed("video", ".avi")
    if head.startswith((b"\x00\x00\x01\xba", b"\x00\x00\x01\xb3")):
        return Sniffed("video", ".mpg")
    return None


def classify(data: bytes, content_type: str | None) -> Sniffed:
    """The upload's kind, checking the declared content type against the bytes."""
    if not data:
        raise UploadError(422, "the uploaded file is empty")
    declared = (content_type or "").split(";")[0].strip().lower()
    found = sniff(data)
    allowed = IMAGE_TYPES | VIDEO_TYPES | JSON_TYPES | NEUTRAL_TYPES
    if declared not in allowed:
        raise UploadError(415, f"unsupported content type {declared!r}: send an image (PNG, JPEG, WebP, BMP, TIFF), "
                               "a video (MP4, WebM, MKV, MOV, AVI, GIF) or a digital twin JSON")
    if found is None:
        raise UploadError(415 if declared in NEUTRAL_TYPES else 422,
                          f"the file is not a recognised image, video or twin JSON (declared {declared or 'no type'}; "
                          "the first bytes match no supported format)")
    expected = {"image": IMAGE_TYPES, "video": VIDEO_TYPES | {"image/gif"}, "twin": JSON_TYPES}[found.kind]
    if declared not in NEUTRAL_TYPES and declared not in expected:
        raise UploadError(415, f"declared content type {declared!r} does not match the file's contents "
                               f"(looks like {found.kind} {found.suffix})")
    return found


class UploadFolder:
    """A private temporary folder; files get random names, the client's name is never used."""

    def __init__(self) -> None:
        self.path = Path(tempfile.mkdtemp(prefix="frs-serve-"))
        os.chmod(self.path, 0o700)

    def write(self, data: bytes, suffix: str) -> Path:
        path = self.path / f"{uuid.uuid4().hex}{suffix}"
        # O_EXCL: never follow or overwrite something that is already there.
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
        return path

    def cleanup(self) -> None:
        import shutil

        shutil.rmtree(self.path, ignore_errors=True)


def check_image(path: Path, config: ServeConfig):
    """Decode the image fully (so a truncated file fails here, not in perception); returns (H, W, 3) uint8 RGB."""
    import numpy as np
    from PIL import Image, ImageOps

    try:
        with Image.open(path) as image:
            if image.width * image.height > config.max_image_pixels:
                raise UploadError(413, f"image is {image.width}x{image.height} pixels; the limit is "
                                       f"{config.max_image_pixels} pixels")
            image.load()
            return np.asarray(ImageOps.exif_transpose(image).convert("RGB"))
    except UploadError:
        raise
    except Exception as exc:  # PIL raises many types for corrupt data (OSError, SyntaxError, ValueError, ...)
        raise UploadError(422, f"the image cannot be decoded ({type(exc).__name__}: {exc})") from None


def check_video(path: Path, config: ServeConfig):
    """Probe the video and decode its first frame; refuse long ones. Returns the first frame as RGB."""
    from fastreasonseg.perception.media import MediaError, iter_frames, probe_video

    try:
        info = probe_video(path)
        first = next(iter(iter_frames(path, max_frames=1))).image
    except (MediaError, StopIteration) as exc:
        raise UploadError(422, f"the video cannot be decoded ({exc or 'no frames'})") from None
    if info.num_frames > config.max_video_frames:
        raise UploadError(413, f"video has {info.num_frames} frames; the limit is {config.max_video_frames}")
    if info.fps and info.num_frames / info.fps > config.max_video_seconds:
        raise UploadError(413, f"video lasts {info.num_frames / info.fps:.1f} s; the limit is "
                               f"{config.max_video_seconds:g} s")
    if info.width * info.height > config.max_image_pixels:
        raise UploadError(413, f"video frames are {info.width}x{info.height}; the limit is {config.max_image_pixels} pixels")
    return first
