"""TorchServe entry point for model ``style_transfer`` (one class, as TorchServe requires)."""

from __future__ import annotations

import json
import logging
import math
import os
import time
from collections import defaultdict

import torch

from handler import kserve
from handler.activity import busy
from handler.auth import ApiKeys, Unauthorized
from handler.cancel import JOB_ID_HEADER, CancelWatch
from handler.faults import (
    exit_worker_soon,
    free_device_memory,
    is_fatal_device_error,
    is_out_of_memory,
)
from handler.histograms import JobHistograms
from handler.histograms import serve as serve_histograms
from handler.logs import use_json_lines
from handler.metrics import HandlerMetrics
from handler.parsing import ParsedRequest, parse_request
from handler.replies import Replies
from handler.responses import JSON, NDJSON, final_line, image_body, json_body
from handler.settings import ServerSettings
from handler.streaming import Streamer, torchserve_sender
from handler.transport import arrived_over_grpc, is_describe_call
from nst import (
    Callback,
    DeadlineExceeded,
    NSTError,
    ParamError,
    Progress,
    Result,
    Stylizer,
    requested_work,
    reuse_freed_memory,
)

log = logging.getLogger(__name__)
RESTART_RETRY_AFTER_S = 5  # a new worker loads in a few seconds
Members = list[tuple[int, ParsedRequest]]  # (request index in the batch, its parsed request)


class StyleTransferHandler:
    """Loads VGG19 once per worker; optimises each batch's requests grouped by output size.

    Every request of a batch gets exactly one reply of its own: a failure while parsing,
    validating, preparing, optimising, encoding or reporting one job is that job's error
    (``handler.replies``), and a group whose optimisation fails is retried job by job.
    """

    def __init__(self) -> None:
        self.initialized = False
        self.settings = ServerSettings()
        self.stylizer: Stylizer  # loaded by initialize()
        self.api_keys: ApiKeys | None = None
        self.histograms: JobHistograms | None = None
        self.batch_size = 1
        self.poisoned = False  # a fatal device error happened: this worker is about to exit

    def initialize(self, context) -> None:
        """Read settings from model-config.yaml, pick the device, load the weights."""
        props = context.system_properties
        gpu_id = props.get("gpu_id")
        device = f"cuda:{gpu_id}" if torch.cuda.is_available() and gpu_id is not None else "cpu"
        use_json_lines()
        settings = ServerSettings.from_model_config(context.model_yaml_config)
        self.settings = settings.for_device(torch.device(device).type)
        self.api_keys = ApiKeys.from_env()
        self.batch_size = int(props.get("batch_size") or 1)
        self.histograms = JobHistograms()
        serve_histograms(self.histograms)
        # The weights travel as the archive's serialized file (nst-build-mar).
        weights = os.path.join(props.get("model_dir"), context.manifest["model"]["serializedFile"])
        reuse_freed_memory()  # the worker process serves this model alone
        self.stylizer = Stylizer(
            weights,
            device=device,
            batch_invariant=self.settings.batch_invariant,
            precision=self.settings.precision,
            style_cache_size=self.settings.style_cache_size,
            style_cache_bytes=self.settings.style_cache_mb * 2**20,
            compile=self.settings.compile,
            compile_mode=self.settings.compile_mode,
        )
        self.initialized = True
        log.info("style_transfer ready on %s (%s)", device, self.settings)

    def handle(self, data: list, context) -> list:
        """Answer every request of the batch; a bad one never fails the others. Whatever
        path a batch takes, it gets exactly one reply per request."""
        headers = [_headers(context, i) for i in range(len(data))]
        metrics = HandlerMetrics(getattr(context, "metrics", None), self.histograms)
        grpc = [i for i, request in enumerate(data) if arrived_over_grpc(request, headers[i])]
        replies = Replies(context, headers, metrics, grpc=grpc)
        try:
            if is_describe_call(data, headers):
                return self._describe(headers[0], replies)
            if self.poisoned:
                return self._restarting(replies)
            expansion = kserve.expand(data, headers)
            if expansion is not None:
                return self._handle_expanded(expansion, context, metrics, len(data))
            with busy():
                self._handle(data, context, replies, metrics)
        except Exception:
            log.exception("a batch of %d failed outside any request", len(data))
        return replies.finish()

    def _handle_expanded(
        self, expansion: kserve.Expansion, context, metrics: HandlerMetrics, count: int
    ) -> list:
        """A batch with KServe requests: one request per job, answered as usual, then folded
        back into one reply per original request."""
        recorder = kserve.Recorder(context, expansion)
        replies = Replies(recorder, expansion.headers, metrics)
        for index, error in expansion.refused.items():
            replies.error(index, error)
        try:
            with busy():
                self._handle(expansion.requests, recorder, replies, metrics)
        except Exception:
            log.exception("an expanded batch of %d failed", len(expansion.requests))
        return expansion.fold(replies.finish(), recorder, context, count)

    def _restarting(self, replies: Replies) -> list:
        """A batch that reached this worker after its device failed: 503 + Retry-After for
        each request (a new worker takes them), instead of being lost when the process ends."""
        error = NSTError(
            "this worker is restarting after a device failure; retry in a few seconds",
            code="worker_restarting",
        )
        for i in range(len(replies.bodies)):
            replies.error(i, error, RESTART_RETRY_AFTER_S)
        return replies.finish()

    def describe_handle(self) -> dict:
        """The limits, defaults and parameter ranges (TorchServe's model description)."""
        return self.settings.describe()

    def _describe(self, headers: dict[str, str], replies: Replies) -> list:
        """The management API's ``?customized=true`` answer, behind the same key check."""
        with replies.guard(0):
            if self.api_keys is not None:
                self.api_keys.check(headers)
            return [json.dumps(self.describe_handle())]
        return replies.finish()

    def _handle(self, data: list, context, replies: Replies, metrics: HandlerMetrics) -> None:
        deadline = time.monotonic() + self.settings.deadline_budget_s()
        headers = replies.headers
        try:
            metrics.batch_call(len(data), self.batch_size)
        except Exception:
            log.warning("could not record batch metrics", exc_info=True)
        groups: dict[tuple, Members] = defaultdict(list)
        for i, request in enumerate(data):
            if replies.done(i):  # refused before it came here (a bad KServe body)
                continue
            with replies.guard(i):
                parsed = self._parse(request, headers[i], grpc=i in replies.grpc)
                replies.sizes[i] = parsed.job.params.size
                groups[parsed.job.batch_key()].append((i, parsed))
        # Cheapest first: a group that finishes early leaves its time to the next ones.
        pending = sorted(groups.values(), key=_work)
        while pending:
            members = pending.pop(0)
            with replies.guard([i for i, _ in members]):
                share = _share(members, pending, deadline)
                self._run_group(members, context, share, metrics, replies)
        try:
            metrics.style_cache(self.stylizer.style_cache)
        except Exception:
            log.warning("could not record style-cache metrics", exc_info=True)

    def _parse(self, request, headers: dict[str, str], grpc: bool) -> ParsedRequest:
        """Authenticate and validate one request completely, before any work."""
        if self.api_keys is not None:
            if grpc:
                raise Unauthorized(
                    "this server checks API keys and a gRPC call cannot carry one (TorchServe "
                    "passes no gRPC metadata to the model): use the HTTP API"
                )
            self.api_keys.check(headers)
        parsed = parse_request(request, headers, self.settings, streams=not grpc)
        self.stylizer.check(parsed.job)  # the layers against the depth the weights cover
        return parsed

    def _run_group(
        self, members: Members, context, deadline: float, metrics, replies: Replies
    ) -> None:
        """Optimise one group of same-size jobs together and fill their replies."""
        members = self._admit(members, deadline, replies)
        if not members:
            return
        jobs = [parsed.job for _, parsed in members]
        try:
            results = self.stylizer.stylize_batch(
                jobs, callback=self._callback(members, context, replies), deadline=deadline
            )
        except DeadlineExceeded as exc:
            for i, _ in members:
                replies.error(i, exc, _retry_after(deadline))
            return
        except Exception as exc:
            self._recover(exc, members, context, deadline, metrics, replies)
            return
        with replies.guard([i for i, _ in members]):
            metrics.batch(len(jobs), results)
            metrics.gpu_memory(self.stylizer.device)
        for (i, parsed), result in zip(members, results):
            with replies.guard(i):
                self._answer(i, parsed, result, len(jobs), replies)

    def _recover(
        self, exc: Exception, members: Members, context, deadline: float, metrics, replies: Replies
    ) -> None:
        """A group failed: retry its jobs one at a time (so only a failing job fails), after
        freeing memory if it ran out; a poisoned device ends the worker after this batch."""
        if is_fatal_device_error(exc):
            for i, _ in members:
                replies.internal(i, exc, code="device_error")
            self.poisoned = True
            exit_worker_soon()
            return
        if is_out_of_memory(exc):
            free_device_memory(self.stylizer.device)
            if len(members) == 1:
                i, parsed = members[0]
                log.warning("request %s: out of memory alone", replies.request_ids[i])
                replies.error(
                    i,
                    NSTError(
                        f"the job does not fit in this server's memory at size "
                        f"{parsed.job.params.size}; try a smaller size, fewer styles or a lower "
                        "style_scale",
                        field="size",
                        code="out_of_memory",
                    ),
                )
                return
        elif len(members) == 1:
            replies.internal(members[0][0], exc)
            return
        log.warning(
            "a group of %d failed (%s); retrying its jobs one at a time",
            len(members),
            type(exc).__name__,
        )
        for member in members:
            with replies.guard(member[0]):
                self._run_group([member], context, deadline, metrics, replies)

    def _admit(self, members: Members, deadline: float, replies: Replies) -> Members:
        """The jobs whose preparation and first step fit before ``deadline`` (by this
        device's measured pace); the others get 503 with ``Retry-After`` at once."""
        admitted: Members = []
        for i, parsed in members:
            jobs = [p.job for _, p in admitted] + [parsed.job]
            if time.monotonic() + self.stylizer.start_seconds(jobs) < deadline:
                admitted.append((i, parsed))
            else:
                replies.error(
                    i,
                    DeadlineExceeded(
                        "the server has no time left for this request in the current batch; "
                        "retry later"
                    ),
                    _retry_after(deadline),
                )
        return admitted

    def _answer(
        self, i: int, parsed: ParsedRequest, result: Result, batch_jobs: int, replies: Replies
    ) -> None:
        """The reply of one finished job: its image, or why there is none."""
        if result.steps_run == 0 and result.stopped == "deadline":
            raise DeadlineExceeded(
                "the server ran out of time before this request could run a step; retry later"
            )
        if result.steps_run == 0 and result.stopped == "non_finite":
            raise ParamError(
                "the loss is not a finite number for these images and "
                "weights; lower style_weight, content_weight or tv_weight",
                field="style_weight",
                code="non_finite_loss",
            )
        params = parsed.job.params
        headers = {"X-NST-Steps": str(result.steps_run), "X-NST-Batch-Jobs": str(batch_jobs)}
        if result.stopped:
            headers["X-NST-Stopped"] = result.stopped
        if parsed.stream:
            body, mime = final_line(result, params), NDJSON
        elif parsed.want_json:
            body, mime = json_body(result, params), JSON
        else:
            body, mime = image_body(result, params)
        replies.success(
            i,
            body,
            mime,
            headers,
            {
                "outcome": "deadline" if result.stopped == "deadline" else "ok",
                "steps_run": result.steps_run,
                "stopped": result.stopped,
                "width": result.image.width,
                "height": result.image.height,
                "optimisation_seconds": round(result.seconds, 3),
                "batch_jobs": batch_jobs,
            },
        )

    def _callback(self, members: Members, context, replies: Replies) -> Callback | None:
        """The group's progress callback: streamed progress for the requests that asked for
        it, and a stop for each job the jobs service has cancelled (``handler.cancel``)."""
        streamer = self._streamer(members, context, replies)
        watch = CancelWatch.for_jobs(
            {k: replies.headers[i].get(JOB_ID_HEADER.lower()) for k, (i, _) in enumerate(members)}
        )
        if watch is None:
            return streamer

        def callback(progress: Progress) -> bool:
            if streamer is not None:
                streamer(progress)
            return watch(progress)

        return callback

    def _streamer(self, members: Members, context, replies: Replies) -> Streamer | None:
        """Progress callback for the requests of the group that asked to stream."""
        streaming = {k: i for k, (i, parsed) in enumerate(members) if parsed.stream}
        if not streaming:
            return None
        return Streamer(streaming, replies, self.settings, torchserve_sender(context))


def _work(group: Members) -> float:
    """A group's requested work, in pixels through VGG (:func:`nst.requested_work`)."""
    return sum(requested_work(p.job) for _, p in group)


def _share(members: Members, later: list[Members], deadline: float) -> float:
    """This group's deadline: its part of the time left, in proportion to its requested work
    but never less than an equal split, so a small group is not starved by a large one (time
    a group leaves unused passes to the next)."""
    mine = _work(members)
    total = mine + sum(_work(group) for group in later)
    part = max(mine / total if total else 1.0, 1.0 / (1 + len(later)))
    now = time.monotonic()
    return now + max(0.0, deadline - now) * part


def _retry_after(deadline: float) -> int:
    """Seconds until this worker should be free again (the end of its current batch)."""
    return max(1, math.ceil(deadline - time.monotonic()))


def _headers(context, i: int) -> dict[str, str]:
    """Request headers of batch item ``i``, lower-cased names (none if unreadable)."""
    try:
        raw = context.get_all_request_header(i) or {}
    except Exception:
        return {}
    return {
        str(k).lower(): (
            v.decode("utf-8", "replace") if isinstance(v, bytes | bytearray) else str(v)
        )
        for k, v in raw.items()
    }
