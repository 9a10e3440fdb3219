"""TorchServe entry point for model ``style_transfer`` (one class, as TorchServe requires)."""

from __future__ import annotations

import logging
import os
import time
from collections import defaultdict

import torch

from handler.activity import busy
from handler.auth import ApiKeys, Unauthorized
from handler.metrics import HandlerMetrics
from handler.parsing import ParsedRequest, parse_request
from handler.responses import (JSON, NDJSON, error_body, error_status, final_line,
                               image_body, internal_error_body, json_body, progress_line,
                               result_summary)
from handler.settings import ServerSettings
from nst import Stylizer
from nst.errors import NSTError

log = logging.getLogger(__name__)


class StyleTransferHandler:
    """Loads VGG19 once per worker; optimises each batch's requests grouped by output size."""

    def __init__(self) -> None:
        self.initialized = False
        self.settings = ServerSettings()
        self.stylizer: Stylizer | None = None
        self.api_keys: ApiKeys | None = None

    def initialize(self, context) -> None:
        """Read settings from model-config.yaml, pick the device, load the weights."""
        props = context.system_properties
        self.settings = ServerSettings.from_model_config(context.model_yaml_config)
        self.api_keys = ApiKeys.from_env()
        gpu_id = props.get("gpu_id")
        device = f"cuda:{gpu_id}" if torch.cuda.is_available() and gpu_id is not None else "cpu"
        # The weights travel as the archive's serialized file (scripts/build_mar.py).
        weights = os.path.join(props.get("model_dir"),
                               context.manifest["model"]["serializedFile"])
        self.stylizer = Stylizer(weights, device=device,
                                 batch_invariant=self.settings.batch_invariant,
                                 precision=self.settings.precision,
                                 style_cache_size=self.settings.style_cache_size,
                                 compile=self.settings.compile)
        self.initialized = True
        log.info("style_transfer ready on %s (%s)", device, self.settings)

    def handle(self, data: list, context) -> list:
        """Answer every request of the batch; a bad one never fails the others."""
        with busy():
            return self._handle(data, context)

    def _handle(self, data: list, context) -> list:
        start = time.monotonic()
        deadline = start + self.settings.deadline_budget_s()
        metrics = HandlerMetrics(getattr(context, "metrics", None))
        replies: list = [None] * len(data)
        groups: dict[tuple, list[tuple[int, ParsedRequest]]] = defaultdict(list)
        for i, request in enumerate(data):
            try:
                headers = _headers(context, i)
                if self.api_keys is not None:
                    self.api_keys.check(headers)
                parsed = parse_request(request, headers, self.settings)
                self.stylizer.check(parsed.job)
            except NSTError as exc:
                replies[i] = self._error(context, i, exc)
                metrics.job_outcome("unauthorized" if isinstance(exc, Unauthorized)
                                    else "invalid")
                continue
            groups[parsed.job.batch_key()].append((i, parsed))
        for members in groups.values():
            self._run_group(members, context, deadline, metrics, replies)
        metrics.style_cache(self.stylizer.style_cache)
        return replies

    def _run_group(self, members, context, deadline, metrics, replies) -> None:
        """Optimise one group of same-size jobs together and fill their replies."""
        jobs = [parsed.job for _, parsed in members]
        try:
            results = self.stylizer.stylize_batch(
                jobs, callback=self._streamer(members, context), deadline=deadline)
        except Exception as exc:  # never let one group take the worker down
            log.exception("style transfer failed for a group of %d", len(jobs))
            for i, _ in members:
                context.set_response_status(500, "Internal Server Error", idx=i)
                context.set_response_content_type(i, JSON)
                replies[i] = internal_error_body(f"{type(exc).__name__}: {exc}")
            metrics.job_outcome("error", len(members))
            return
        metrics.batch(len(jobs), results)
        metrics.gpu_memory(self.stylizer.device)
        for (i, parsed), result in zip(members, results):
            metrics.job_outcome("deadline" if result.stopped == "deadline" else "ok")
            replies[i] = self._success(context, i, parsed, result, len(jobs))

    @staticmethod
    def _streamer(members, context):
        """Progress callback sending NDJSON chunks to the requests that asked to stream."""
        streaming = {k: i for k, (i, parsed) in enumerate(members) if parsed.stream}
        if not streaming:
            return None
        from ts.handler_utils.utils import send_intermediate_predict_response

        def send(progress) -> None:
            i = streaming.get(progress.job)
            if i is not None:
                context.set_response_content_type(i, NDJSON)
                send_intermediate_predict_response({i: progress_line(progress)},
                                                   {i: context.request_ids[i]},
                                                   "Intermediate response", 200, context)
        return send

    @staticmethod
    def _success(context, i: int, parsed: ParsedRequest, result, batch_jobs: int) -> bytes:
        params = parsed.job.params
        log.info("request %d: %s", i, result_summary(result))
        context.set_response_header(i, "X-NST-Steps", str(result.steps_run))
        context.set_response_header(i, "X-NST-Batch-Jobs", str(batch_jobs))
        if result.stopped:
            context.set_response_header(i, "X-NST-Stopped", result.stopped)
        if parsed.stream:
            context.set_response_content_type(i, NDJSON)
            return final_line(result, params)
        if parsed.want_json:
            context.set_response_content_type(i, JSON)
            return json_body(result, params)
        data, mime = image_body(result, params)
        context.set_response_content_type(i, mime)
        return data

    @staticmethod
    def _error(context, i: int, exc: NSTError) -> bytes:
        status = error_status(exc)
        context.set_response_status(status, exc.code, idx=i)
        context.set_response_content_type(i, JSON)
        if status == 401:
            context.set_response_header(i, "WWW-Authenticate", "Bearer")
        return error_body(exc)


def _headers(context, i: int) -> dict[str, str]:
    """Request headers of batch item ``i``, lower-cased names."""
    raw = context.get_all_request_header(i) or {}
    return {str(k).lower(): (v.decode() if isinstance(v, bytes) else str(v))
            for k, v in raw.items()}
