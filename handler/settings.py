"""Server limits and defaults, read from the ``handler:`` block of model-config.yaml.

Each setting is declared once with its type, range and meaning, like the request parameters
(``nst.params``); a block that breaks a declaration is refused as a whole with one line naming
the key, when the archive is built (``nst-build-mar``) and again when a worker loads it.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping
from dataclasses import dataclass, fields
from typing import Any

from nst import (
    COMPILE_MODES,
    MAX_STYLES,
    PRECISIONS,
    ParamError,
    StyleParams,
    declared,
    parameter_ranges,
    quote,
)

DEVICE_DEFAULTS = {"cpu": "cpu_defaults", "cuda": "gpu_defaults"}  # device type -> key


class SettingsError(ValueError):
    """A ``handler:`` block (or ``responseTimeout``) that cannot be served; names the key."""


def _param_hi(name: str) -> float:
    """The declared maximum of a request parameter (a server limit cannot exceed it)."""
    return next(f.metadata["hi"] for f in fields(StyleParams) if f.name == name)


@dataclass(frozen=True)
class ServerSettings:
    """Operator-set limits and defaults (one place: model-config.yaml ``handler:``)."""

    max_size: int = declared(
        1024, "largest `size` a request may ask for", lo=16, hi=_param_hi("size")
    )
    max_steps: int = declared(1000, "largest `steps`", lo=1, hi=_param_hi("steps"))
    max_input_pixels: int = declared(
        40_000_000, "decoded pixels per uploaded image", lo=1, hi=1_000_000_000
    )
    max_styles: int = declared(4, "style images per request", lo=1, hi=MAX_STYLES)
    # output pixels + every resized style image's pixels (nst.work_pixels): bounds the
    # VGG work of one evaluation, whatever mix of size, style_scale and styles is asked
    max_work_pixels: int = declared(
        6_291_456, "output pixels plus every resized style's pixels", lo=256, hi=1_000_000_000
    )
    deadline_margin_s: float = declared(
        15.0, "answer this long before responseTimeout", lo=0.0, hi=3600.0
    )
    # from model-config.yaml ``responseTimeout``, not from the handler block
    response_timeout_s: float = declared(120.0, "TorchServe's responseTimeout", lo=1.0, hi=86400.0)
    batch_invariant: bool | None = declared(
        None, "one VGG pass per job (true) or per group (false); null: by device", kind="bool?"
    )
    precision: str = declared("auto", "dtype of the VGG passes", choices=PRECISIONS)
    style_cache_size: int = declared(32, "style images whose targets stay cached", lo=0, hi=10_000)
    style_cache_mb: int = declared(512, "memory those targets may hold, MB", lo=0, hi=1_000_000)
    compile: bool = declared(False, "torch.compile each step's objective")
    compile_mode: str = declared(
        "default",
        "torch.compile mode: reduce-overhead replays each step as CUDA graphs (GPUs)",
        choices=COMPILE_MODES,
    )
    stream_interval_s: float = declared(
        0.5, "streams: one progress line this often", lo=0.0, hi=60.0
    )
    preview_interval_s: float = declared(2.0, "streams: one preview this often", lo=0.0, hi=3600.0)
    preview_max_side: int = declared(256, "streams: previews' longest side", lo=16, hi=4096)
    defaults: Mapping[str, Any] = declared({}, "request defaults on every device")
    cpu_defaults: Mapping[str, Any] = declared({}, "request defaults on CPUs, under `defaults`")
    gpu_defaults: Mapping[str, Any] = declared({}, "request defaults on GPUs, under `defaults`")

    def __post_init__(self) -> None:
        for f in fields(self):
            _check(f, getattr(self, f.name))
        if self.deadline_margin_s >= self.response_timeout_s:
            raise SettingsError(
                f"handler.deadline_margin_s ({self.deadline_margin_s:g}) must be below "
                f"responseTimeout ({self.response_timeout_s:g}): no time would be left to work"
            )
        self.base_params()  # the defaults fit the limits, on every device
        for device, key in DEVICE_DEFAULTS.items():
            try:
                StyleParams.from_mapping(self.device_defaults(device), limits=self.limits)
            except ParamError as exc:
                raise SettingsError(f"model-config handler.{key}: {exc}") from exc

    @classmethod
    def from_model_config(cls, config: Mapping[str, Any] | None) -> ServerSettings:
        """Build from the parsed model-config.yaml; unknown keys and values that break a
        declaration raise :class:`SettingsError`."""
        config = config or {}
        block = config.get("handler") or {}
        if not isinstance(block, Mapping):
            raise SettingsError(f"handler must be a mapping of settings, got {quote(block)}")
        block = dict(block)
        known = {f.name for f in fields(cls)} - {"response_timeout_s"}
        unknown = set(block) - known
        if unknown:
            raise SettingsError(
                f"unknown keys in model-config handler block: {sorted(map(str, unknown))}"
            )
        if "responseTimeout" in config:
            timeout = config["responseTimeout"]
            if not _is_number(timeout) or timeout <= 0:
                raise SettingsError(
                    f"responseTimeout must be a positive number of seconds, got {quote(timeout)}"
                )
            block["response_timeout_s"] = float(timeout)
        return cls(**block)

    def device_defaults(self, device_type: str) -> dict[str, Any]:
        """The request defaults on a device: ``defaults`` (an operator's, for every device)
        over the device's own, ``cpu_defaults`` on a CPU or ``gpu_defaults`` on a CUDA GPU."""
        own = getattr(self, DEVICE_DEFAULTS.get(device_type, "cpu_defaults"))
        return {**own, **self.defaults}

    def for_device(self, device_type: str) -> ServerSettings:
        """These settings with :meth:`device_defaults` as the defaults of every request."""
        return dataclasses.replace(self, defaults=self.device_defaults(device_type))

    @property
    def limits(self) -> dict[str, float]:
        """Per-field maxima enforced on requests."""
        return {"size": self.max_size, "steps": self.max_steps}

    def base_params(self) -> StyleParams:
        """The server's default parameters (StyleParams defaults + ``defaults``)."""
        try:
            return StyleParams.from_mapping(self.defaults, limits=self.limits)
        except ParamError as exc:
            raise SettingsError(f"model-config handler.defaults: {exc}") from exc

    def describe(self) -> dict[str, Any]:
        """What clients may ask of this server: its limits and every parameter's default and
        range (the management API's ``GET /models/style_transfer?customized=true``)."""
        return {
            "limits": {
                "max_size": self.max_size,
                "max_steps": self.max_steps,
                "max_styles": self.max_styles,
                "max_input_pixels": self.max_input_pixels,
                "max_work_pixels": self.max_work_pixels,
                "response_timeout_s": self.response_timeout_s,
                "deadline_margin_s": self.deadline_margin_s,
            },
            "parameters": parameter_ranges(self.base_params(), self.limits),
        }

    def deadline_budget_s(self) -> float:
        """Seconds a batch may optimise before it must answer."""
        return max(1.0, self.response_timeout_s - self.deadline_margin_s)


def _is_number(value: Any) -> bool:
    """An int or float that is finite, not a bool (YAML's ``yes``) nor a quoted number."""
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


def _check(f: dataclasses.Field, value: Any) -> None:
    """Raise :class:`SettingsError` unless ``value`` has the field's type and range."""
    m = f.metadata
    kind = m["kind"]
    key = "responseTimeout" if f.name == "response_timeout_s" else f"handler.{f.name}"
    if kind in ("int", "float"):
        typed = isinstance(value, int) if kind == "int" else True
        if not (_is_number(value) and typed and m["lo"] <= value <= m["hi"]):
            what = "an integer" if kind == "int" else "a number"
            raise SettingsError(
                f"{key} must be {what} in [{m['lo']:g}, {m['hi']:g}], got {quote(value)}"
            )
    elif kind == "str":
        if value not in m["choices"]:
            raise SettingsError(
                f"{key} must be one of {', '.join(m['choices'])}, got {quote(value)}"
            )
    elif kind in ("bool", "bool?"):
        if not (isinstance(value, bool) or (kind == "bool?" and value is None)):
            allowed = "true, false or null" if kind == "bool?" else "true or false"
            raise SettingsError(f"{key} must be {allowed}, got {quote(value)}")
    elif not isinstance(value, Mapping):
        raise SettingsError(f"{key} must be a mapping of request parameters, got {quote(value)}")
