"""Client for the style_transfer server.

    python scripts/stylize.py CONTENT STYLE [STYLE...] -o OUT.png [--url URL] [--token KEY]
        [--stream] [--param NAME=VALUE ...]

Sends the images as multipart/form-data (extra styles as ``style_2``, ``style_3``...),
shows streamed progress with a progress bar when ``--stream`` is given, and writes the image.
"""

from __future__ import annotations

import argparse
import base64
import json
import sys
import time
from pathlib import Path

import requests
from tqdm import tqdm

DEFAULT_URL = "http://127.0.0.1:8080/predictions/style_transfer"


def build_files(content: Path, styles: list[Path]) -> dict[str, tuple[str, bytes]]:
    """Multipart file fields for the content and style images."""
    files = {"content": (content.name, content.read_bytes())}
    for i, style in enumerate(styles):
        files["style" if i == 0 else f"style_{i + 1}"] = (style.name, style.read_bytes())
    return files


def read_stream(reply: requests.Response) -> dict:
    """Consume NDJSON progress lines; returns the final result line."""
    bar = None
    for raw in reply.iter_lines():
        if not raw:
            continue
        line = json.loads(raw)
        if line["type"] == "result":
            if bar is not None:  # progress lines are rate-limited: show where the run ended
                bar.update(line["steps_run"] - bar.n)
                bar.close()
            return line
        if line["type"] == "error":
            raise RuntimeError(f"the server failed mid-stream: {line['message']}")
        if bar is None:
            bar = tqdm(total=line["steps"], unit="step")
        bar.update(line["step"] - bar.n)
        bar.set_postfix(
            style=f"{line['losses']['style']:.3g}", content=f"{line['losses']['content']:.3g}"
        )
    raise RuntimeError("the stream ended without a result")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("content", type=Path)
    parser.add_argument("styles", type=Path, nargs="+")
    parser.add_argument("-o", "--output", type=Path, required=True)
    parser.add_argument("--url", default=DEFAULT_URL)
    parser.add_argument("--token", help="inference key when token authorisation is on")
    parser.add_argument("--stream", action="store_true", help="show progress while it runs")
    parser.add_argument(
        "--param",
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help="a request parameter, e.g. --param size=256 --param steps=100",
    )
    parser.add_argument("--timeout", type=float, default=600)
    parser.add_argument("--retries", type=int, default=5, help="retries after a 503 (busy)")
    args = parser.parse_args(argv)
    fields = dict(p.split("=", 1) for p in args.param)
    if args.stream:
        fields["stream"] = "true"
    headers = {"Authorization": f"Bearer {args.token}"} if args.token else {}
    if not args.stream:
        headers["Accept"] = "application/json"
    files = build_files(args.content, args.styles)
    for attempt in range(args.retries + 1):
        reply = requests.post(
            args.url,
            files=files,
            data=fields,
            headers=headers,
            stream=args.stream,
            timeout=args.timeout,
        )
        if reply.status_code != 503 or attempt == args.retries:
            break
        # Queue full (TorchServe sends no Retry-After), or no time left in the worker's
        # batch (the handler's 503 says when to come back).
        hint = reply.headers.get("Retry-After", "")
        wait = float(hint) if hint.isdigit() else min(30.0, 2.0**attempt)
        print(f"server busy (503), retrying in {wait:.0f} s", file=sys.stderr)
        time.sleep(wait)
    if reply.status_code != 200:
        print(f"error {reply.status_code}: {reply.text}", file=sys.stderr)
        return 1
    result = read_stream(reply) if args.stream else reply.json()
    args.output.write_bytes(base64.b64decode(result["image"]))
    print(
        f"wrote {args.output} ({result['width']}x{result['height']}, {result['steps_run']} "
        f"steps, {result['seconds']} s, stopped: {result['stopped']})"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
