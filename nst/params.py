"""Every stylisation parameter, declared once: type, default, allowed range, description.

The CLI (``nst.cli``) and the server's request parser are generated from these
declarations; :meth:`StyleParams.from_mapping` parses untrusted values (strings included) and
raises :class:`~nst.errors.ParamError` naming the field and the allowed range.
"""

from __future__ import annotations

import dataclasses
import math
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from .errors import ParamError, quote
from .layers import layer_index


def declared(
    default: Any,
    help: str,
    *,
    lo: float | None = None,
    hi: float | None = None,
    choices: tuple[str, ...] | None = None,
    kind: str | None = None,
) -> Any:
    """A dataclass field declared once: default, help, range or choices, kind (the type's
    name unless given). The server's settings (handler/settings.py) are declared the same way."""
    meta = {
        "help": help,
        "lo": lo,
        "hi": hi,
        "choices": choices,
        "kind": kind or type(default).__name__,
    }
    if isinstance(default, dict):
        return field(default_factory=lambda: dict(default), metadata=meta)
    if isinstance(default, tuple | list):
        return field(default_factory=lambda: tuple(default), metadata=meta)
    return field(default=default, metadata=meta)


STYLE_LAYERS = ("relu1_1", "relu2_1", "relu3_1", "relu4_1", "relu5_1")
STYLE_LOSSES = ("gram", "mean_cov", "sliced_wasserstein")
PARAMETERIZATIONS = ("pixels", "pyramid")  # what the optimiser moves (nst.preconditioner)
# Choices of a Stylizer (a server's settings, not a request's), declared here without torch.
PRECISIONS = ("auto", "fp32", "bf16")  # dtype of the VGG passes (nst.precision)
COMPILE_MODES = ("default", "reduce-overhead")  # torch.compile modes (nst.objective)
# What each preset sets, chosen from the measurements in docs/benchmarks.md ("Presets").
PRESETS: dict[str, dict[str, Any]] = {
    "none": {},
    "fast": {"steps": 100, "levels": 2, "average": 0.0},
    "balanced": {"steps": 300, "levels": 2, "average": 0.0},
    "best": {"steps": 600, "levels": 2, "average": 0.0},
}
MAX_LIST = 16  # longest list parameter (layers, weights)
MAX_STYLES = 8  # style images the engine takes per job; a server may allow fewer


@dataclass(frozen=True)
class StyleParams:
    """Parameters of one stylisation job (all keyword-only, all validated)."""

    preset: str = declared(
        "none",
        "a quality preset: sets steps, levels and averaging (docs/api.md); parameters "
        "given with it win; 'none' leaves the defaults as they are",
        choices=tuple(PRESETS),
    )
    size: int = declared(512, "longest side of the output in pixels", lo=16, hi=4096)
    steps: int = declared(300, "optimisation steps (one forward+backward each)", lo=1, hi=10000)
    time_limit: float = declared(
        0.0,
        "stop after about this many seconds of work and return the image so far "
        "(0: no limit; at least one step runs; the server's own deadline still applies)",
        lo=0.0,
        hi=3600.0,
    )
    content_weight: float = declared(1.0, "weight of the content loss (alpha)", lo=0.0, hi=1e6)
    style_weight: float = declared(5.0, "weight of the style loss (beta)", lo=0.0, hi=1e9)
    tv_weight: float = declared(
        10.0, "weight of the total-variation smoothing loss", lo=0.0, hi=1e6
    )
    optimizer: str = declared("lbfgs", "optimiser of the pixels", choices=("lbfgs", "adam"))
    lr: float = declared(0.02, "Adam learning rate (pixels are in 0..1)", lo=1e-5, hi=1.0)
    parameterization: str = declared(
        "pyramid",
        "what the optimiser moves: the pixels (the paper), or a Laplacian pyramid of the "
        "image, whose coarse levels move whole areas at once (the same loss in fewer steps)",
        choices=PARAMETERIZATIONS,
    )
    # 'matched' by default: lower losses than 'content' after 50 and after 300 steps on both
    # pairs measured (docs/benchmarks.md); 'content' is the paper's start.
    init: str = declared(
        "matched",
        "starting image: 'matched' is the content recoloured to the "
        "styles' colour mean and covariance, 'content' the content as it is; "
        "'image' the init image (the default when one is sent)",
        choices=("matched", "content", "noise", "style", "image"),
    )
    seed: int = declared(
        0, "random seed: same inputs and seed give the same image", lo=0, hi=2**31 - 1
    )
    # Off by default: from the content image with L-BFGS it only tied a single-scale run of
    # the same wall time on a 2-core CPU (docs/benchmarks.md).
    levels: int = declared(
        1,
        "coarse-to-fine: levels of 1/2, 1/4 ... size optimised before the "
        "full size (1: full size only)",
        lo=1,
        hi=4,
    )
    coarse_share: float = declared(
        0.3, "share of the steps spent on the coarser levels", lo=0.0, hi=0.9
    )
    style_scale: float = declared(1.0, "style image size relative to the output", lo=0.1, hi=4.0)
    style_weights: tuple[float, ...] = declared(
        (), "blend weights of several style images (default: equal)", kind="floats"
    )
    preserve_color: str = declared(
        "none",
        "keep the content's colours: 'original_colors' stylises, then puts the content's "
        "colours back on the result's luminance; 'luminance' and 'histogram' recolour the "
        "style to the content's before the transfer",
        choices=("none", "original_colors", "luminance", "histogram"),
    )
    style_loss: str = declared(
        "gram",
        "statistics the style loss matches: Gram matrices (the paper), feature mean and "
        "covariance, or the whole feature distribution (sliced Wasserstein)",
        choices=STYLE_LOSSES,
    )
    average: float = declared(
        0.0,
        "Polyak averaging: the image returned and previewed is an exponential moving "
        "average of the iterates with this decay (0: the last iterate)",
        lo=0.0,
        hi=0.999,
    )
    pooling: str = declared("max", "VGG pooling", choices=("max", "avg"))
    content_layers: tuple[str, ...] = declared(
        ("relu4_2",), "layers of the content loss", kind="layers"
    )
    style_layers: tuple[str, ...] = declared(
        STYLE_LAYERS, "layers of the style loss", kind="layers"
    )
    style_layer_weights: tuple[float, ...] = declared(
        (), "per-style-layer weights (default: equal)", kind="floats"
    )
    preview_every: int = declared(
        0, "report a preview image every N steps (0: never)", lo=0, hi=10000
    )
    format: str = declared("png", "output image format", choices=("png", "jpeg", "webp"))
    quality: int = declared(92, "JPEG/WebP quality", lo=1, hi=100)

    def __post_init__(self) -> None:
        for f in dataclasses.fields(self):
            _check(f, getattr(self, f.name))
        if self.style_layer_weights and len(self.style_layer_weights) != len(self.style_layers):
            raise ParamError(
                f"style_layer_weights needs one weight per style layer "
                f"({len(self.style_layers)}), got {len(self.style_layer_weights)}",
                field="style_layer_weights",
            )

    @classmethod
    def from_mapping(
        cls,
        values: Mapping[str, Any],
        *,
        limits: Mapping[str, float] | None = None,
        defaults: Mapping[str, Any] | None = None,
    ) -> StyleParams:
        """Parse untrusted values (e.g. form fields as strings or bytes).

        Unknown names are an error. ``limits`` may lower a field's maximum (server limits).
        ``defaults`` replace declared defaults; a ``preset`` (from ``values`` or
        ``defaults``) fills what ``values`` leave out, within ``limits``.
        """
        known = {f.name: f for f in dataclasses.fields(cls)}
        merged = {**(defaults or {}), **values}
        if "preset" in merged:
            preset = _coerce(known["preset"], merged["preset"])
            _check(known["preset"], preset)
            chosen = {
                name: min(value, (limits or {}).get(name, value))
                for name, value in PRESETS[preset].items()
            }
            merged = {**(defaults or {}), **chosen, **values}
        parsed = {}
        for name, raw in merged.items():
            if name not in known:
                raise ParamError(
                    f"unknown parameter {quote(name)}; known: {', '.join(known)}", field=name
                )
            parsed[name] = _coerce(known[name], raw)
        params = cls(**parsed)
        for name, hi in (limits or {}).items():
            if getattr(params, name) > hi:
                raise ParamError(
                    f"{name} must be at most {number_text(hi)} on this server, got "
                    f"{getattr(params, name)}",
                    field=name,
                    code="limit_exceeded",
                )
        return params

    def replace(self, **changes: Any) -> StyleParams:
        """A copy with ``changes`` applied and validated."""
        return dataclasses.replace(self, **changes)


def describe(f: dataclasses.Field) -> str:
    """Human text for a field: description, range or choices, default."""
    m = f.metadata
    allowed = (
        f"one of {', '.join(m['choices'])}"
        if m["choices"]
        else f"{number_text(m['lo'])}..{number_text(m['hi'])}"
        if m["lo"] is not None
        else ""
    )
    return f"{m['help']} [{allowed}{'; ' if allowed else ''}default {declared_default(f)!r}]"


def declared_default(f: dataclasses.Field) -> Any:
    """A :func:`declared` field's default (made afresh for a list or mapping)."""
    return f.default if f.default is not dataclasses.MISSING else f.default_factory()  # type: ignore[operator]


def number_text(value: float) -> str:
    """A number as error messages and documents show it: ``256``, ``0.02``, ``1e+06``."""
    return str(int(value)) if float(value).is_integer() and abs(value) < 1e15 else f"{value:g}"


def _range_error(f: dataclasses.Field, value: Any) -> ParamError:
    m = f.metadata
    what = {"int": "an integer", "float": "a number"}.get(m["kind"], m["kind"])
    return ParamError(
        f"{f.name} must be {what} in [{number_text(m['lo'])}, {number_text(m['hi'])}], "
        f"got {quote(value)}",
        field=f.name,
    )


def _finite_number(value: Any) -> bool:
    """A real int or float (not a bool) that converts to a finite float."""
    if not isinstance(value, int | float) or isinstance(value, bool):
        return False
    try:
        return math.isfinite(value)
    except OverflowError:  # an int beyond float's range
        return False


def _finite_sum(values: tuple[float, ...]) -> float:
    """Exact sum of finite numbers; ``inf`` when it overflows a float."""
    try:
        return math.fsum(values)
    except OverflowError:
        return math.inf


def _check(f: dataclasses.Field, value: Any) -> None:
    m = f.metadata
    kind = m["kind"]
    if kind == "int":
        if not isinstance(value, int) or isinstance(value, bool) or not m["lo"] <= value <= m["hi"]:
            raise _range_error(f, value)
    elif kind == "float":
        if not _finite_number(value) or not m["lo"] <= value <= m["hi"]:
            raise _range_error(f, value)
    elif kind == "str":
        if value not in m["choices"]:
            raise ParamError(
                f"{f.name} must be one of {', '.join(m['choices'])}, got {quote(value)}",
                field=f.name,
            )
    elif kind == "floats":
        if (
            not isinstance(value, tuple)
            or len(value) > MAX_LIST
            or not all(_finite_number(v) and v >= 0 for v in value)
            or (value and not 0 < _finite_sum(value) < math.inf)
        ):
            raise ParamError(
                f"{f.name} must be a list of at most {MAX_LIST} non-negative "
                f"numbers with a positive, finite sum, got {quote(value)}",
                field=f.name,
            )
    elif kind == "layers":
        if not isinstance(value, tuple) or not value or len(value) > MAX_LIST:
            raise ParamError(f"{f.name} must list 1 to {MAX_LIST} VGG19 layer names", field=f.name)
        for name in value:
            if not isinstance(name, str):
                raise ParamError(
                    f"{f.name} must list layer names (strings), got {quote(name)}", field=f.name
                )
            layer_index(name, field=f.name)


def _coerce(f: dataclasses.Field, raw: Any) -> Any:
    """Turn a request value (str, bytes, number, list) into the field's type."""
    kind = f.metadata["kind"]
    if isinstance(raw, bytes | bytearray):
        try:
            raw = bytes(raw).decode("utf-8")
        except UnicodeDecodeError:
            raise ParamError(f"{f.name} is not UTF-8 text", field=f.name) from None
    if isinstance(raw, str):
        raw = raw.strip()
    if kind == "int":
        if isinstance(raw, str):
            try:
                return int(raw, 10)
            except ValueError:
                raise _range_error(f, raw) from None
        if isinstance(raw, float) and raw.is_integer():
            return int(raw)
        return raw
    if kind == "float":
        if isinstance(raw, str):
            try:
                return float(raw)
            except ValueError:
                raise _range_error(f, raw) from None
        return raw
    if kind == "str":
        return raw.lower() if isinstance(raw, str) else raw
    if isinstance(raw, str):
        raw = _list_text(raw)
    if not isinstance(raw, list | tuple):
        return raw
    if kind == "floats":
        try:
            return tuple(float(v) if isinstance(v, str) else v for v in raw)
        except (ValueError, OverflowError):
            raise ParamError(
                f"{f.name} must be a list of numbers, got {quote(raw)}", field=f.name
            ) from None
    return tuple(raw)


def _list_text(text: str) -> list[str]:
    """Form text of a list: ``1,2``, ``1 2`` or ``[1, 2]`` (JSON-style quotes allowed)."""
    if text.startswith("[") and text.endswith("]"):
        text = text[1:-1]
    return [part.strip("'\"") for part in re.split(r"[,\s]+", text) if part.strip("'\"")]


def parameter_ranges(
    defaults: StyleParams | None = None, limits: dict[str, float] | None = None
) -> dict[str, dict[str, Any]]:
    """Every parameter's type, default, range or choices and meaning, as JSON-ready values:
    ``defaults`` replace the declared ones, ``limits`` lower the declared maxima."""
    defaults = defaults or StyleParams()
    out = {}
    for f in dataclasses.fields(StyleParams):
        m = f.metadata
        value = getattr(defaults, f.name)
        entry: dict[str, Any] = {
            "type": m["kind"],
            "default": list(value) if isinstance(value, tuple) else value,
            "description": m["help"],
        }
        if m["choices"]:
            entry["choices"] = list(m["choices"])
        if m["lo"] is not None:
            hi = min(m["hi"], (limits or {}).get(f.name, m["hi"]))
            entry.update(minimum=m["lo"], maximum=hi)
        out[f.name] = entry
    return out
