"""Folders and clips through a running server with nst-client (``make bench-client``).

    python bench/bench_client.py [--url http://127.0.0.1:8080] [--images 8] [--in-flight 1 4]
        [--frames 12] [--size 256] [--steps 100] [--frame-steps 50]

A folder of ``--images`` photos (the sample and shared content images, repeated) is
stylised once per ``--in-flight`` value, and a clip of ``--frames`` frames (a pan across
the sample photo, 12 fps) frame by frame. Prints seconds per image and per frame.
"""

from __future__ import annotations

import argparse
import itertools
import shutil
import tempfile
import time
from pathlib import Path

import imageio_ffmpeg
from nst_client import Client
from nst_client.folder import stylize_folder
from nst_client.video import chained_frames, stylize_video
from PIL import Image

ROOT = Path(__file__).resolve().parents[1]
STYLE = ROOT / "nst_server/resources/examples" / "starry_night.jpg"


def make_folder(folder: Path, count: int) -> None:
    photos = sorted((ROOT.parent / "shared/images/content").glob("*")) or [
        ROOT / "nst_server/resources/examples/astronaut.jpg"
    ]
    folder.mkdir()
    for i, photo in zip(range(count), itertools.cycle(photos)):
        shutil.copy(photo, folder / f"{i:03d}{photo.suffix}")


def make_clip(path: Path, frames: int, side: int) -> None:
    photo = Image.open(ROOT / "nst_server/resources/examples/astronaut.jpg").convert("RGB")
    photo = photo.resize((side * 2, side * 2))
    width, height = side, side * 3 // 4 // 2 * 2
    writer = imageio_ffmpeg.write_frames(str(path), (width, height), fps=12, macro_block_size=2)
    writer.send(None)
    for i in range(frames):  # a slow pan
        writer.send(photo.crop((i * 4, 40, i * 4 + width, 40 + height)).tobytes())
    writer.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--url", default="http://127.0.0.1:8080")
    parser.add_argument("--images", type=int, default=8)
    parser.add_argument("--in-flight", type=int, nargs="+", default=[1, 4])
    parser.add_argument("--frames", type=int, default=12)
    parser.add_argument("--size", type=int, default=256)
    parser.add_argument("--steps", type=int, default=100)
    parser.add_argument("--frame-steps", type=int, default=50)
    args = parser.parse_args()
    client = Client(args.url)
    params = {"size": args.size, "steps": args.steps}
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        make_folder(work / "in", args.images)
        for in_flight in args.in_flight:
            out = work / f"out-{in_flight}"
            started = time.monotonic()
            report = stylize_folder(
                lambda p: client.run(p, STYLE, **params).data, work / "in", out, ".png", in_flight
            )
            seconds = time.monotonic() - started
            print(
                f"folder: {len(report.written)} images at {args.size} px x {args.steps} steps, "
                f"{in_flight} in flight: {seconds:.1f} s ({seconds / args.images:.2f} s/image)"
            )
        make_clip(work / "clip.mp4", args.frames, args.size)
        frame = chained_frames(client, (STYLE,), params, args.frame_steps)
        report = stylize_video(frame, work / "clip.mp4", work / "styled.mp4")
        print(
            f"clip: {report.frames} frames at {args.size} px, {args.steps} steps then "
            f"{args.frame_steps} per frame: {report.seconds_per_frame:.2f} s/frame"
        )


if __name__ == "__main__":
    main()
