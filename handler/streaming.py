"""NDJSON progress for the requests that asked to stream, rate-limited and size-capped.

TorchServe's frontend forwards every chunk at once and has no back-pressure, so a client
asking ``preview_every=1`` at the largest size could make the worker push gigabytes. Each
streamed job gets at most one progress line per ``stream_interval_s`` and one preview per
``preview_interval_s``, previews downscaled to ``preview_max_side``. A chunk that cannot be
sent ends that job's stream (the optimisation goes on); it never fails the group.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import Any

from PIL import Image

from nst import Progress, resize_longest

from .replies import Replies
from .responses import NDJSON, progress_line
from .settings import ServerSettings

log = logging.getLogger(__name__)
Send = Callable[[int, bytes], None]  # (request index, chunk)


class Streamer:
    """Progress callback for one group: job index in the group -> request index."""

    def __init__(
        self, streaming: dict[int, int], replies: Replies, settings: ServerSettings, send: Send
    ):
        self.streaming, self.replies, self.settings, self.send = streaming, replies, settings, send
        self.last_line: dict[int, float] = {}
        self.last_preview: dict[int, float] = {}

    def __call__(self, progress: Progress) -> None:
        i = self.streaming.get(progress.job)
        if i is None:
            return
        now = time.monotonic()
        preview = self._preview(i, progress.preview, now)
        if preview is None and now - self.last_line.get(i, -1e9) < self.settings.stream_interval_s:
            return
        self.last_line[i] = now
        try:
            if i not in self.replies.streaming:
                self.replies.context.set_response_content_type(i, NDJSON)
            self.send(i, progress_line(progress, preview))
            self.replies.streaming.add(i)
        except Exception:
            log.warning("request %s: stream ended", self.replies.request_ids[i], exc_info=True)
            self.streaming = {k: v for k, v in self.streaming.items() if v != i}

    def _preview(self, i: int, image: Image.Image | None, now: float) -> Image.Image | None:
        if image is None or now - self.last_preview.get(i, -1e9) < self.settings.preview_interval_s:
            return None
        self.last_preview[i] = now
        return resize_longest(image, min(self.settings.preview_max_side, max(image.size)))


def torchserve_sender(context: Any) -> Send:
    """Send one chunk of request ``i`` through TorchServe before the handler returns."""
    from ts.handler_utils.utils import send_intermediate_predict_response

    def send(i: int, chunk: bytes) -> None:
        send_intermediate_predict_response(
            {i: chunk}, {i: context.request_ids[i]}, "Intermediate response", 200, context
        )

    return send
