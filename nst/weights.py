"""Loading VGG19 feature weights and the input convention they were trained with.

A weights file is a torchvision-layout state dict (``features.N.weight``/``.bias``) for a
contiguous prefix of VGG19's conv layers (conv1_1 .. some layer). Safetensors files carry
their input convention in ``__metadata__``: ``channel_order`` (RGB/BGR), ``pixel_range``
(1 or 255), ``mean`` and ``std`` (JSON lists in that channel order, in pixel_range units).
torchvision ``.pth`` files are read with ``torch.load(weights_only=True)`` (no pickle code
runs) and use torchvision's convention.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path

import torch
from safetensors import safe_open
from safetensors.torch import save_file

from .errors import WeightsError
from .layers import CONV_KEY, conv_shapes, layer_names

WEIGHTS_ENV = "NST_WEIGHTS"
CACHED_NAME = "vgg19-torchvision-features.safetensors"  # what nst-fetch-weights writes
TORCHVISION_NAME = "vgg19-dcbb9e9d.pth"  # torchvision's own download of the same weights


def cache_dir() -> Path:
    """torchvision's checkpoint cache: ``torch.hub.get_dir()/checkpoints`` (``$TORCH_HOME``,
    else ``$XDG_CACHE_HOME/torch``, else ``~/.cache/torch``)."""
    return Path(torch.hub.get_dir()) / "checkpoints"


def cached_weights() -> Path:
    """Where ``nst-fetch-weights`` writes the official weights by default."""
    return cache_dir() / CACHED_NAME


@dataclass(frozen=True)
class InputConvention:
    """How images must be presented to the network.

    ``to_model`` maps RGB pixels in [0, 1] to the network's input.
    """

    channel_order: str  # "RGB" or "BGR"
    pixel_range: float  # 1.0 or 255.0
    mean: tuple[float, float, float]  # in channel_order, in pixel_range units
    std: tuple[float, float, float]

    def __post_init__(self) -> None:
        if self.channel_order not in ("RGB", "BGR"):
            raise WeightsError(f"channel_order must be RGB or BGR, got {self.channel_order!r}")
        if self.pixel_range <= 0 or len(self.mean) != 3 or len(self.std) != 3:
            raise WeightsError("pixel_range must be > 0 and mean/std must have 3 values")
        if min(self.std) <= 0:
            raise WeightsError("std values must be > 0")

    def _stats(self, like: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        mean = torch.tensor(self.mean, dtype=like.dtype, device=like.device).view(1, 3, 1, 1)
        std = torch.tensor(self.std, dtype=like.dtype, device=like.device).view(1, 3, 1, 1)
        return mean, std

    def to_model(self, rgb: torch.Tensor) -> torch.Tensor:
        """RGB in [0, 1], shape (B, 3, H, W) -> network input."""
        x = rgb.flip(1) if self.channel_order == "BGR" else rgb
        mean, std = self._stats(x)
        return (x * self.pixel_range - mean) / std

    def to_metadata(self) -> dict[str, str]:
        """The safetensors ``__metadata__`` entries describing this convention."""
        return {
            "channel_order": self.channel_order,
            "pixel_range": f"{self.pixel_range:g}",
            "mean": json.dumps(list(self.mean)),
            "std": json.dumps(list(self.std)),
        }

    @classmethod
    def from_metadata(cls, meta: dict[str, str] | None) -> InputConvention:
        """Read the convention from safetensors metadata; every key is required."""
        meta = meta or {}
        missing = [k for k in ("channel_order", "pixel_range", "mean", "std") if k not in meta]
        if missing:
            raise WeightsError(
                f"weights metadata lacks {', '.join(missing)}: the input convention "
                "(channel_order, pixel_range, mean, std) must be stated in the file"
            )
        try:
            return cls(
                channel_order=meta["channel_order"].upper(),
                pixel_range=float(meta["pixel_range"]),
                mean=_triple(json.loads(meta["mean"])),
                std=_triple(json.loads(meta["std"])),
            )
        except (ValueError, TypeError) as exc:
            raise WeightsError(f"unreadable input convention in weights metadata: {exc}") from exc


# torchvision's ImageNet models: RGB, [0, 1], normalised by ImageNet mean/std.
TORCHVISION_CONVENTION = InputConvention("RGB", 1.0, (0.485, 0.456, 0.406), (0.229, 0.224, 0.225))


@dataclass(frozen=True)
class VGGWeights:
    """Validated conv weights for VGG19 ``features[0 .. last_index]``."""

    state_dict: dict[str, torch.Tensor]
    convention: InputConvention
    last_index: int  # features index of the deepest conv layer present
    source: str


def _triple(values: list) -> tuple[float, float, float]:
    """Floats, one per channel (:class:`InputConvention` checks that there are three)."""
    return tuple(float(v) for v in values)  # type: ignore[return-value]


def weights_candidates() -> list[Path]:
    """Where weights are looked for, in order: ``$NST_WEIGHTS`` (alone, when set), else the
    cache: what ``nst-fetch-weights`` wrote, then torchvision's own VGG19 checkpoint."""
    if os.environ.get(WEIGHTS_ENV):
        return [Path(os.environ[WEIGHTS_ENV])]
    return [cached_weights(), cache_dir() / TORCHVISION_NAME]


def find_weights() -> Path | None:
    """The first of :func:`weights_candidates` that exists, or None."""
    return next((path for path in weights_candidates() if path.is_file()), None)


def default_weights_path() -> Path:
    """:func:`find_weights`, or the first candidate when none exists (for its error message)."""
    return find_weights() or weights_candidates()[0]


def missing_advice(path: Path) -> str:
    """One line: the weights at ``path`` are missing, and the commands that provide them."""
    return (
        f"VGG19 weights not found at {path}: run `nst-fetch-weights` (downloads the official "
        f"ones into {cache_dir()}), or set {WEIGHTS_ENV} to a VGG19 weights file "
        "(.safetensors or .pth; `nst-fetch-weights --from FILE` converts a checkpoint)"
    )


def features_state_dict(state_dict: dict[str, torch.Tensor]) -> tuple[dict[str, torch.Tensor], int]:
    """Keep the ``features.*`` conv tensors of a VGG19 state dict and check them.

    Accepts full-model keys (``features.0.weight``, classifier keys dropped) or bare
    ``features`` keys (``0.weight``). Returns the features dict (as float32) and the index of
    the deepest conv layer. Raises :class:`WeightsError` for unknown keys, wrong shapes or a
    gap in the conv layers (a partial file must be a prefix: conv1_1 .. convX_Y).
    """
    shapes = conv_shapes()
    out: dict[str, torch.Tensor] = {}
    for key, tensor in state_dict.items():
        if key.startswith("classifier."):
            continue
        match = CONV_KEY.fullmatch(key)
        if match is None:
            raise WeightsError(f"unexpected key {key!r}: not a VGG19 features conv tensor")
        name = key if key.startswith("features.") else f"features.{key}"
        index = int(match[1])
        if index not in shapes:
            raise WeightsError(f"unexpected key {key!r}: features.{index} is not a conv layer")
        cout, cin = shapes[index]
        want = (cout, cin, 3, 3) if match[2] == "weight" else (cout,)
        if tuple(tensor.shape) != want:
            raise WeightsError(
                f"{name} has shape {tuple(tensor.shape)}, VGG19 needs {want} "
                f"({layer_names()[index]})"
            )
        out[name] = tensor.detach().to(torch.float32).contiguous()
    present = [i for i in shapes if f"features.{i}.weight" in out or f"features.{i}.bias" in out]
    if not present:
        raise WeightsError("no VGG19 features conv weights found")
    expected = [i for i in shapes if i <= max(present)]
    for i in expected:
        for kind in ("weight", "bias"):
            if f"features.{i}.{kind}" not in out:
                raise WeightsError(
                    f"features.{i}.{kind} ({layer_names()[i]}) is missing: weights must cover "
                    f"conv1_1 .. {layer_names()[max(present)]} without gaps"
                )
    return out, max(present)


def load_weights(path: str | os.PathLike | None = None) -> VGGWeights:
    """Load and validate a ``.safetensors`` (with convention metadata) or torchvision ``.pth``."""
    path = Path(path) if path is not None else default_weights_path()
    if not path.is_file():
        raise WeightsError(missing_advice(path))
    if path.suffix == ".safetensors":
        try:
            with safe_open(str(path), framework="pt") as f:
                meta = f.metadata()
                tensors = {k: f.get_tensor(k) for k in f.keys()}  # noqa: SIM118 (safe_open is not a dict)
        except Exception as exc:  # safetensors raises its own error types
            raise WeightsError(f"{path} is not a readable safetensors file: {exc}") from exc
        convention = InputConvention.from_metadata(meta)
    elif path.suffix in (".pth", ".pt"):
        try:
            tensors = torch.load(path, map_location="cpu", weights_only=True)
        except Exception as exc:
            raise WeightsError(f"{path} is not a loadable weights-only state dict: {exc}") from exc
        if not isinstance(tensors, dict):
            raise WeightsError(f"{path} does not hold a state dict")
        convention = TORCHVISION_CONVENTION
    else:
        raise WeightsError(f"{path}: weights must be .safetensors or .pth")
    state, last = features_state_dict(tensors)
    return VGGWeights(state, convention, last, str(path))


def save_weights(
    path: str | os.PathLike,
    state_dict: dict[str, torch.Tensor],
    convention: InputConvention,
    extra_metadata: dict[str, str] | None = None,
) -> int:
    """Write a validated features-only safetensors with its convention; returns the tensor count."""
    state, last = features_state_dict(state_dict)
    meta = {"arch": "vgg19", "layers": f"conv1_1..{layer_names()[last]}"}
    meta.update(extra_metadata or {})
    meta.update(convention.to_metadata())
    save_file(state, str(path), metadata=meta)
    return len(state)
