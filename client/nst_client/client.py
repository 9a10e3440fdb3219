"""Python client of the style-transfer server (requests and Pillow only).

from nst_client import Client
client = Client("http://127.0.0.1:8080")
client.stylize("photo.jpg", "starry_night.jpg", size=256, steps=100).save("out.png")
"""

from __future__ import annotations

import base64
import io
import json
import os
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import requests
from PIL import Image
from requests.adapters import HTTPAdapter
from urllib3.util.retry import Retry

from .errors import ConnectionFailed, ServerError, StreamFailed, from_body

ImageInput = str | os.PathLike[str] | bytes | Image.Image
MODEL = "style_transfer"
TOKEN_ENV = "NST_API_KEY"  # the client command's default for --token
IMAGE_PARAMS = ("init_image", "mask")  # parameters sent as image files
MAX_RETRY_AFTER_S = 60.0  # the longest Retry-After the client waits for before a retry


@dataclass(frozen=True)
class Progress:
    """One streamed progress line: ``step`` of ``steps``, the losses, maybe a preview."""

    step: int
    steps: int
    losses: dict[str, float | None]
    preview: Image.Image | None = None


@dataclass(frozen=True)
class Result:
    """The stylised image (``data``: encoded as the server sent it) and the run's figures."""

    image: Image.Image
    data: bytes
    steps_run: int
    stopped: str | None
    seconds: float
    losses: dict[str, float | None]
    initial_losses: dict[str, float | None]


class CappedRetry(Retry):
    """urllib3's retry, but a server's ``Retry-After`` is obeyed up to
    :data:`MAX_RETRY_AFTER_S` only (a huge or hostile value never stalls the client)."""

    def get_retry_after(self, response):
        seconds = super().get_retry_after(response)
        return None if seconds is None else min(seconds, MAX_RETRY_AFTER_S)


class Client:
    """A connection to one server.

    ``url`` is the inference address (``http://host:8080``) or the full prediction URL;
    ``token`` the API key where the server checks keys; ``jobs_url`` the async jobs API
    (:meth:`submit`); ``timeout`` the most seconds to wait
    for the answer's next bytes (a job may run minutes), ``connect_timeout`` the most to wait
    for the connection itself (an unreachable server fails fast). Requests answered 503
    (queue full, or no time left in the worker's batch) are retried ``retries`` times with
    exponential back-off, honouring ``Retry-After``.
    """

    def __init__(
        self,
        url: str = "http://127.0.0.1:8080",
        token: str | None = None,
        timeout: float = 600.0,
        retries: int = 5,
        backoff: float = 1.0,
        connect_timeout: float = 10.0,
        jobs_url: str = "http://127.0.0.1:8085",
    ):
        url = url.rstrip("/")
        self.url = url if "/predictions/" in url else f"{url}/predictions/{MODEL}"
        self.jobs_url = jobs_url.rstrip("/")
        self.timeout = timeout
        self.connect_timeout = connect_timeout
        self.session = requests.Session()
        if token:
            self.session.headers["Authorization"] = f"Bearer {token}"
        retry = CappedRetry(
            total=retries,
            connect=0,  # a refused connection is not a busy server: fail at once
            read=0,
            status_forcelist=(503,),
            allowed_methods=frozenset({"POST"}),
            backoff_factor=backoff,
            backoff_max=30.0,
            respect_retry_after_header=True,
            raise_on_status=False,
        )
        adapter = HTTPAdapter(max_retries=retry)
        self.session.mount("http://", adapter)
        self.session.mount("https://", adapter)

    def stylize(
        self, content: ImageInput, style: ImageInput, *styles: ImageInput, **params: Any
    ) -> Image.Image:
        """The stylised image. ``params`` are the server's request parameters (``size``,
        ``steps``, ``style_weights=(2, 1)``, ``init_image=...``, ``mask=...`` ...); images
        are paths, bytes or PIL images."""
        return self.run(content, style, *styles, **params).image

    def run(
        self, content: ImageInput, style: ImageInput, *styles: ImageInput, **params: Any
    ) -> Result:
        """Like :meth:`stylize`, with the run's figures (steps run, losses, seconds)."""
        reply = self._post(content, (style, *styles), params, stream=False)
        return _result(_json(reply))

    def stream(
        self, content: ImageInput, style: ImageInput, *styles: ImageInput, **params: Any
    ) -> Iterator[Progress | Result]:
        """Progress while the job runs (with previews when ``preview_every`` is set), then
        the :class:`Result`. Lines are rate-limited by the server."""
        reply = self._post(content, (style, *styles), params, stream=True)
        with reply:
            for raw in reply.iter_lines():
                if not raw:
                    continue
                line = json.loads(raw)
                kind = line.get("type")
                if kind == "progress":
                    yield _progress(line)
                elif kind == "result":
                    yield _result(line)
                    return
                elif kind == "error":
                    raise StreamFailed(
                        200, line.get("error", "error"), line.get("message", ""), line.get("field")
                    )
        raise ConnectionFailed("the stream ended without a result")

    def submit(
        self,
        content: ImageInput,
        style: ImageInput,
        *styles: ImageInput,
        idempotency_key: str | None = None,
        **params: Any,
    ) -> Job:
        """Queue the job on the async jobs API and return at once: a :class:`Job` to
        follow, wait for, cancel or fetch. With ``idempotency_key``, a retried submit (after
        a dropped connection) returns the job already queued instead of a second one."""
        files, fields = _form(content, (style, *styles), params)
        headers = {"Idempotency-Key": idempotency_key} if idempotency_key else {}
        reply = self.request(
            "POST", f"{self.jobs_url}/v1/jobs", files=files, data=fields, headers=headers
        )
        if reply.status_code != 202:
            raise _error(reply)
        return Job(self, _json(reply))

    def request(self, method: str, url: str, **kwargs: Any) -> requests.Response:
        """One HTTP call of this client, its transport errors as :class:`ConnectionFailed`."""
        kwargs.setdefault("timeout", (self.connect_timeout, self.timeout))
        try:
            return self.session.request(method, url, **kwargs)
        except requests.ConnectTimeout as exc:
            raise ConnectionFailed(f"cannot reach {url} within {self.connect_timeout:g} s") from exc
        except requests.Timeout as exc:
            raise ConnectionFailed(f"{url}: no answer within {self.timeout:g} s") from exc
        except requests.ConnectionError as exc:
            raise ConnectionFailed(f"cannot reach {url} (is the server running?)") from exc
        except requests.RequestException as exc:
            raise ConnectionFailed(f"{url}: {exc}") from exc

    def _post(
        self,
        content: ImageInput,
        styles: tuple[ImageInput, ...],
        params: Mapping[str, Any],
        stream: bool,
    ) -> requests.Response:
        files, fields = _form(content, styles, params)
        if stream:
            fields["stream"] = "true"
        reply = self.request(
            "POST",
            self.url,
            files=files,
            data=fields,
            headers={} if stream else {"Accept": "application/json"},
            stream=stream,
        )
        if reply.status_code != 200:
            raise _error(reply)
        return reply


class Job:
    """A job on the async jobs API (from :meth:`Client.submit`). ``info`` is its last known
    state as the API shows it (``status``, ``progress``, ``queue_position``...)."""

    def __init__(self, client: Client, info: dict[str, Any]):
        self.client, self.info = client, info
        self.id: str = info["id"]
        self.url = f"{client.jobs_url}/v1/jobs/{self.id}"

    @property
    def status(self) -> str:
        return str(self.info["status"])

    def refresh(self, wait: float = 0.0) -> dict[str, Any]:
        """The job's state now; with ``wait``, once it changes or after ``wait`` seconds."""
        params = {"wait": f"{min(wait, 60.0):g}"} if wait else None
        reply = self.client.request("GET", self.url, params=params)
        if reply.status_code != 200:
            raise _error(reply)
        self.info = _json(reply)
        return self.info

    def wait(self, timeout: float | None = None) -> dict[str, Any]:
        """Wait until the job has ended (``succeeded``, ``failed`` or ``cancelled``) or
        ``timeout`` seconds have passed; its state."""
        deadline = None if timeout is None else time.monotonic() + timeout
        while self.status not in ENDED:
            left = 30.0 if deadline is None else deadline - time.monotonic()
            if left <= 0:
                break
            self.refresh(wait=min(30.0, left))
        return self.info

    def cancel(self) -> dict[str, Any]:
        """Cancel: a queued job never runs; a running one stops within a step or two and
        keeps the image it had reached."""
        reply = self.client.request("DELETE", self.url)
        if reply.status_code not in (200, 202):
            raise _error(reply)
        self.info = _json(reply)
        return self.info

    def result(self) -> Result:
        """The job's image and figures (waits for the job to end first); a failed job
        raises the :class:`ServerError` it failed with."""
        self.wait()
        if self.status == "failed":
            error = self.info.get("error") or {}
            raise from_body(int(error.get("status", 500)), error, self.id)
        reply = self.client.request("GET", f"{self.url}/result")
        if reply.status_code != 200:
            raise _error(reply)
        summary = self.info.get("result") or {}
        return Result(
            image=_decode(reply.content),
            data=reply.content,
            steps_run=int(reply.headers.get("X-NST-Steps", summary.get("steps_run", 0))),
            stopped=reply.headers.get("X-NST-Stopped"),
            seconds=summary.get("seconds", 0.0),
            losses=summary.get("losses", {}),
            initial_losses=summary.get("initial_losses", {}),
        )


ENDED = ("succeeded", "failed", "cancelled")


def _form(
    content: ImageInput, styles: tuple[ImageInput, ...], params: Mapping[str, Any]
) -> tuple[dict[str, tuple[str, bytes]], dict[str, str]]:
    """The multipart files and text fields of a request."""
    params = dict(params)
    files = {"content": image_file(content, "content")}
    for i, style in enumerate(styles):
        name = "style" if i == 0 else f"style_{i + 1}"
        files[name] = image_file(style, name)
    for name in IMAGE_PARAMS:
        if params.get(name) is not None:
            files[name] = image_file(params.pop(name), name)
    fields = {name: form_value(value) for name, value in params.items() if value is not None}
    return files, fields


def image_file(image: ImageInput, name: str) -> tuple[str, bytes]:
    """A multipart file entry for a path, encoded bytes or a PIL image (sent as PNG)."""
    if isinstance(image, Image.Image):
        suffix, data = _encoded(image)
        return f"{name}{suffix}", data
    if isinstance(image, bytes | bytearray):
        return name, bytes(image)
    path = Path(image)
    return path.name, path.read_bytes()


PNG_MODES = ("1", "L", "LA", "P", "RGB", "RGBA", "I;16")  # written as they are, as PNG
TIFF_MODES = ("CMYK", "I", "F")  # as TIFF: PNG cannot hold them
ALPHA_MODES = {"PA": "RGBA", "RGBa": "RGBA", "La": "LA"}  # the PNG modes they become


def _encoded(image: Image.Image) -> tuple[str, bytes]:
    """(suffix, bytes) of a PIL image, lossless: PNG, TIFF for CMYK and 32-bit or float
    greyscale, other modes (YCbCr, LAB, HSV, premultiplied alpha) as RGB or RGBA PNG. The
    ICC profile goes along, so the server converts the colours."""
    buffer = io.BytesIO()
    if image.mode in TIFF_MODES:
        image.save(buffer, format="TIFF")
        return ".tif", buffer.getvalue()
    if image.mode not in PNG_MODES:
        image = image.convert(ALPHA_MODES.get(image.mode, "RGB"))
    image.save(buffer, format="PNG")
    return ".png", buffer.getvalue()


def form_value(value: Any) -> str:
    """A parameter as multipart text: lists comma-separated, booleans lower case."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, list | tuple):
        return ",".join(str(v) for v in value)
    return str(value)


def _json(reply: requests.Response) -> dict:
    try:
        body = reply.json()
    except ValueError as exc:
        raise ConnectionFailed(f"the server's answer is not JSON: {reply.text[:200]}") from exc
    if not isinstance(body, dict):
        raise ConnectionFailed("the server's answer is not a JSON object")
    return body


def _error(reply: requests.Response) -> ServerError:
    try:
        body: Any = reply.json()
    except ValueError:
        body = reply.text
    return from_body(reply.status_code, body, reply.headers.get("x-request-id"))


def _decode(data: bytes) -> Image.Image:
    image = Image.open(io.BytesIO(data))
    image.load()
    return image


def _progress(line: dict) -> Progress:
    preview = line.get("preview_png")
    return Progress(
        step=line["step"],
        steps=line["steps"],
        losses=line.get("losses", {}),
        preview=_decode(base64.b64decode(preview)) if preview else None,
    )


def _result(line: dict) -> Result:
    data = base64.b64decode(line["image"])
    return Result(
        image=_decode(data),
        data=data,
        steps_run=line["steps_run"],
        stopped=line.get("stopped"),
        seconds=line["seconds"],
        losses=line.get("losses", {}),
        initial_losses=line.get("initial_losses", {}),
    )
