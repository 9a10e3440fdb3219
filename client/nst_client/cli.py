"""Send images to the style-transfer server: one image, a folder, or a video clip.

    nst-client CONTENT STYLE [STYLE...] -o OUT.png      one image (--stream: progress bar)
    nst-client FOLDER  STYLE [STYLE...] -o OUT_FOLDER   every image of a folder (resumable)
    nst-client CLIP.mp4 STYLE [STYLE...] -o OUT.mp4     every frame of a clip

Parameters go as ``--param NAME=VALUE`` (``--param size=256 --param steps=100``). The API
key comes from ``--token`` or the ``NST_API_KEY`` environment variable. Errors are printed
as one line (the server's error code, message and field); the exit status is 1.
"""

from __future__ import annotations

import argparse
import os
import sys
from importlib import metadata
from pathlib import Path
from typing import Any

import requests
from tqdm import tqdm

from .client import TOKEN_ENV, Client, Progress, Result
from .errors import NSTClientError
from .folder import pending, stylize_folder, write_atomically
from .video import VIDEO_SUFFIXES, chained_frames, frame_count, stylize_video

LOCAL_INFERENCE = "http://127.0.0.1:8080"  # nst-server start's default addresses
LOCAL_MANAGEMENT = "http://127.0.0.1:8081"
DEFAULT_URL = f"{LOCAL_INFERENCE}/predictions/style_transfer"
DEFAULT_IN_FLIGHT = 4  # model-config.yaml's batchSize x one worker
SUFFIXES = {"png": ".png", "jpeg": ".jpg", "webp": ".webp"}


class HelpFormatter(argparse.RawDescriptionHelpFormatter, argparse.ArgumentDefaultsHelpFormatter):
    """The description as written, each option's default after its help."""


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="nst-client",
        description=__doc__.split("\n\n")[0],
        epilog=__doc__.split("\n\n", 1)[1],
        formatter_class=HelpFormatter,
    )
    p.add_argument("content", type=Path, help="an image, a folder of images, or a video clip")
    p.add_argument("styles", type=Path, nargs="+", help="style image(s)")
    p.add_argument("-o", "--output", type=Path, required=True, help="image, folder or clip")
    p.add_argument("--url", default=DEFAULT_URL, help="inference address or prediction URL")
    # The key's default comes from the environment when it runs, so --help never shows it.
    p.add_argument("--token", default=argparse.SUPPRESS, help=f"API key (default: ${TOKEN_ENV})")
    p.add_argument("--stream", action="store_true", help="one image: show progress while it runs")
    p.add_argument(
        "--param",
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help="a request parameter (docs/api.md), repeatable",
    )
    p.add_argument(
        "--mask",
        type=Path,
        metavar="FILE",
        help="region mask of the content's shape (black: unstylised, white: style 1, red: 2..., "
        "or grey levels, dark to light: style 1, 2...)",
    )
    p.add_argument(
        "--version", action="version", version=f"%(prog)s {metadata.version('nst-client')}"
    )
    p.add_argument(
        "--timeout", type=float, default=600, help="seconds to wait for the answer's next bytes"
    )
    p.add_argument(
        "--connect-timeout", type=float, default=10, help="seconds to wait for a connection"
    )
    p.add_argument("--retries", type=int, default=5, help="retries after a 503 (busy)")
    p.add_argument(
        "--in-flight",
        type=int,
        default=None,
        help="folders: requests at once (default: the model's batchSize x workers, read from "
        f"--management-url, else {DEFAULT_IN_FLIGHT})",
    )
    p.add_argument(
        "--management-url",
        default=None,
        help=f"the server's management API, for its batch size (default: {LOCAL_MANAGEMENT} "
        f"when --url is the local server's {LOCAL_INFERENCE}, else none)",
    )
    p.add_argument(
        "--frame-steps", type=int, default=None, help="clips: steps after the first frame"
    )
    return p


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    args.token = getattr(args, "token", None) or os.environ.get(TOKEN_ENV)
    params: dict[str, Any] = {}
    for item in args.param:
        name, sep, value = item.partition("=")
        if not sep:
            print(f"nst-client: --param {item!r} is not NAME=VALUE", file=sys.stderr)
            return 2
        params[name.strip()] = value
    if args.mask is not None:
        params["mask"] = args.mask
    client = Client(
        args.url, args.token, args.timeout, args.retries, connect_timeout=args.connect_timeout
    )
    try:
        if args.content.is_dir():
            return run_folder(client, args, params)
        if args.content.suffix.lower() in VIDEO_SUFFIXES:
            return run_video(client, args, params)
        return run_one(client, args, params)
    except NSTClientError as exc:
        print(f"nst-client: {exc}", file=sys.stderr)
        return 1
    except OSError as exc:  # a missing or unreadable input file
        print(f"nst-client: {exc.strerror or exc}: {exc.filename or ''}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("nst-client: interrupted", file=sys.stderr)
        return 130


def run_one(client: Client, args: argparse.Namespace, params: dict[str, Any]) -> int:
    if args.stream:
        result = progress_bar(client.stream(args.content, *args.styles, **params))
    else:
        result = client.run(args.content, *args.styles, **params)
    write_atomically(result.data, args.output)
    print(
        f"wrote {args.output} ({result.image.width}x{result.image.height}, {result.steps_run} "
        f"steps, {result.seconds} s, stopped: {result.stopped})"
    )
    return 0


def progress_bar(events: Any) -> Result:
    """Show streamed progress as a bar; returns the result."""
    with tqdm(unit="step") as bar:
        for event in events:
            if isinstance(event, Progress):
                bar.total = event.steps
                bar.update(event.step - bar.n)
                style, content = event.losses.get("style"), event.losses.get("content")
                if style is not None and content is not None:
                    bar.set_postfix(style=f"{style:.3g}", content=f"{content:.3g}")
            else:  # progress lines are rate-limited: show where the run ended
                bar.total = bar.total or event.steps_run
                bar.update(event.steps_run - bar.n)
                return event
    raise NSTClientError("the stream ended without a result")


def run_folder(client: Client, args: argparse.Namespace, params: dict[str, Any]) -> int:
    suffix = SUFFIXES.get(str(params.get("format", "png")).strip().lower(), ".png")
    in_flight = args.in_flight or server_capacity(args.url, args.management_url, args.token)
    total = sum(1 for _ in pending(args.content, args.output, suffix))
    with tqdm(total=total, unit="image") as bar:
        report = stylize_folder(
            lambda path: client.run(path, *args.styles, **params).data,
            args.content,
            args.output,
            suffix,
            in_flight,
            on_done=lambda: bar.update(1),
        )
    for path, reason in report.failed.items():
        print(f"nst-client: {path}: {reason}", file=sys.stderr)
    print(
        f"wrote {len(report.written)} images to {args.output} ({len(report.skipped)} already "
        f"done, {len(report.failed)} failed, {in_flight} requests in flight)"
    )
    return 1 if report.failed else 0


def run_video(client: Client, args: argparse.Namespace, params: dict[str, Any]) -> int:
    frame = chained_frames(client, tuple(args.styles), params, args.frame_steps)
    with tqdm(total=frame_count(args.content), unit="frame") as bar:
        report = stylize_video(frame, args.content, args.output, on_frame=lambda: bar.update(1))
    print(
        f"wrote {args.output} ({report.frames} frames at {report.fps:g} fps, "
        f"{report.seconds_per_frame:.2f} s per frame)"
    )
    return 0


def server_capacity(url: str, management_url: str | None, token: str | None = None) -> int:
    """Requests the server optimises at once (batchSize x workers): from the model's
    metadata on the inference port (``/v2/models/style_transfer``, where the container's
    front door answers it), else from the management API: ``management_url``, or the local
    server's (port 8081) when ``url`` is the local default. Otherwise, or when none can be
    read, :data:`DEFAULT_IN_FLIGHT`, saying so."""
    published = capacity_on_inference_port(url, token)
    if published is not None:
        return published
    if management_url is None and url.startswith(LOCAL_INFERENCE):
        management_url = LOCAL_MANAGEMENT
    if management_url is None:
        return _fallback("no --management-url to read the server's batch size from")
    model = url.rstrip("/").rsplit("/", 1)[-1] if "/predictions/" in url else "style_transfer"
    address = f"{management_url.rstrip('/')}/models/{model}"
    try:
        reply = requests.get(address, timeout=5)
        reply.raise_for_status()
        description = reply.json()[0]
        return max(1, int(description["batchSize"]) * max(1, len(description["workers"])))
    except requests.RequestException as exc:
        return _fallback(f"could not read {address} ({type(exc).__name__})")
    except (ValueError, KeyError, IndexError, TypeError):
        return _fallback(f"{address} did not describe a model")


def capacity_on_inference_port(url: str, token: str | None) -> int | None:
    """batch_size x workers from the model's OIP metadata, or None where it is not served."""
    base = url.split("/predictions/")[0].rstrip("/")
    model = url.rstrip("/").rsplit("/", 1)[-1] if "/predictions/" in url else "style_transfer"
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    try:
        reply = requests.get(f"{base}/v2/models/{model}", headers=headers, timeout=5)
        capacity = reply.json()["capacity"] if reply.status_code == 200 else None
        return None if capacity is None else max(1, capacity["batch_size"] * capacity["workers"])
    except (requests.RequestException, ValueError, KeyError, TypeError):
        return None


def _fallback(reason: str) -> int:
    """:data:`DEFAULT_IN_FLIGHT`, with a note on stderr saying why and how to choose."""
    print(
        f"nst-client: {reason}: sending {DEFAULT_IN_FLIGHT} requests at once "
        "(set --in-flight, or --management-url)",
        file=sys.stderr,
    )
    return DEFAULT_IN_FLIGHT
