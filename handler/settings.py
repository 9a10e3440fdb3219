"""Server limits and defaults, read from the ``handler:`` block of model-config.yaml."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from typing import Any

from nst.errors import ParamError
from nst.params import StyleParams, parameter_ranges


@dataclass(frozen=True)
class ServerSettings:
    """Operator-set limits (one place: model-config.yaml ``handler:``)."""

    max_size: int = 1024  # longest output side, pixels
    max_steps: int = 1000
    max_input_pixels: int = 40_000_000  # decoded pixels per uploaded image
    max_styles: int = 4
    # output pixels + every resized style image's pixels (nst.prepare.work_pixels): bounds the
    # VGG work of one evaluation, whatever mix of size, style_scale and styles is asked
    max_work_pixels: int = 6_291_456
    deadline_margin_s: float = 15.0  # stop this long before responseTimeout
    response_timeout_s: float = 120.0  # from model-config.yaml ``responseTimeout``
    batch_invariant: bool | None = None  # None: auto (see nst.Stylizer)
    precision: str = "auto"  # VGG passes: auto, fp32, bf16 (nst.precision)
    style_cache_size: int = 32  # style images whose Gram targets are kept
    style_cache_mb: int = 512  # and the most memory they may hold together (device memory)
    compile: bool = False  # torch.compile each step's objective (nst.Stylizer)
    stream_interval_s: float = 0.5  # at most one progress line per streamed job this often
    preview_interval_s: float = 2.0  # at most one preview per streamed job this often
    preview_max_side: int = 256  # previews are downscaled to this longest side
    defaults: Mapping[str, Any] = field(default_factory=dict)  # StyleParams overrides

    @classmethod
    def from_model_config(cls, config: Mapping[str, Any] | None) -> ServerSettings:
        """Build from the parsed model-config.yaml; unknown keys are an error."""
        config = config or {}
        block = dict(config.get("handler") or {})
        known = {f.name for f in fields(cls)} - {"response_timeout_s"}
        unknown = set(block) - known
        if unknown:
            raise ValueError(f"unknown keys in model-config handler block: {sorted(unknown)}")
        if "responseTimeout" in config:
            block["response_timeout_s"] = float(config["responseTimeout"])
        settings = cls(**block)
        settings.base_params()  # validate the defaults at load time, not per request
        return settings

    @property
    def limits(self) -> dict[str, float]:
        """Per-field maxima enforced on requests."""
        return {"size": self.max_size, "steps": self.max_steps}

    def base_params(self) -> StyleParams:
        """The server's default parameters (StyleParams defaults + ``defaults``)."""
        try:
            return StyleParams.from_mapping(self.defaults, limits=self.limits)
        except ParamError as exc:
            raise ValueError(f"model-config handler.defaults: {exc}") from exc

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
