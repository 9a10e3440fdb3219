"""A clip through the server, frame by frame, each frame started from the previous result.

Needs ``imageio-ffmpeg`` (``pip install "nst-server[video]"``), which ships an ffmpeg binary.
The sound track is not copied.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from PIL import Image

from .client import Client, ImageInput
from .errors import NSTClientError

VIDEO_SUFFIXES = (".mp4", ".mov", ".mkv", ".webm", ".avi", ".m4v")

# (frame, previous stylised frame or None) -> stylised frame
StylizeFrame = Callable[[Image.Image, Image.Image | None], Image.Image]


@dataclass(frozen=True)
class VideoReport:
    """Frames written, the clip's frame rate, and the wall time per frame."""

    frames: int
    fps: float
    seconds_per_frame: float


def chained_frames(
    client: Client,
    styles: tuple[ImageInput, ...],
    params: dict[str, Any],
    frame_steps: int | None = None,
) -> StylizeFrame:
    """Stylise a frame through ``client``: the first from the request's start, each later
    one from the previous result (``init=image``), with ``frame_steps`` steps if given."""
    later = {**params, **({"steps": frame_steps} if frame_steps else {})}
    later.update(init="image")

    def frame(image: Image.Image, previous: Image.Image | None) -> Image.Image:
        if previous is None:
            return client.stylize(image, *styles, **params)
        return client.stylize(image, *styles, **later, init_image=previous)

    return frame


def ffmpeg() -> Any:
    """The imageio_ffmpeg module, or a clear error when it is not installed."""
    try:
        import imageio_ffmpeg
    except ImportError:
        raise NSTClientError(
            'videos need imageio-ffmpeg: pip install "nst-server[video]" (or imageio-ffmpeg)'
        ) from None
    return imageio_ffmpeg


def frame_count(source: Path) -> int:
    """Frames in the clip (ffmpeg decodes it once to count)."""
    frames, _ = ffmpeg().count_frames_and_secs(str(source))
    return int(frames)


def stylize_video(
    stylize: StylizeFrame,
    source: Path,
    target: Path,
    on_frame: Callable[[], None] = lambda: None,
) -> VideoReport:
    """Stylise every frame of ``source`` into ``target`` at the clip's frame rate."""
    io = ffmpeg()
    reader = io.read_frames(str(source))
    meta = next(reader)
    fps, (width, height) = float(meta["fps"]), meta["size"]
    writer = None
    previous: Image.Image | None = None
    frames, started = 0, time.monotonic()
    try:
        for raw in reader:
            frame = Image.frombytes("RGB", (width, height), raw)
            previous = _even(stylize(frame, previous).convert("RGB"))
            if writer is None:
                writer = io.write_frames(
                    str(target), previous.size, fps=fps, macro_block_size=2, quality=8
                )
                writer.send(None)  # start ffmpeg
            writer.send(previous.tobytes())
            frames += 1
            on_frame()
    finally:
        reader.close()
        if writer is not None:
            writer.close()
    if frames == 0:
        raise NSTClientError(f"{source}: no frames could be read")
    return VideoReport(frames, fps, (time.monotonic() - started) / frames)


def _even(image: Image.Image) -> Image.Image:
    """Cropped to even sides: the H.264 encoder's 4:2:0 colour needs them."""
    w, h = image.size
    return image if w % 2 == 0 and h % 2 == 0 else image.crop((0, 0, w - w % 2, h - h % 2))
