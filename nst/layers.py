"""VGG19 layer names and their indices in torchvision's ``vgg19().features``.

The layout is torchvision's configuration "E" (``torchvision.models.vgg.cfgs["E"]``),
written out here so that the engine never imports torchvision, whose import costs about a
second of every start (docs/benchmarks.md, "Start-up"); a test checks that the two agree.
Names follow the paper: ``conv{block}_{n}``, ``relu{block}_{n}``, ``pool{block}``.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from functools import cache

from .errors import ParamError, quote

# A conv tensor's name in a VGG19 state dict: full-model or bare ``features`` keys.
CONV_KEY = re.compile(r"(?:features\.)?(\d+)\.(weight|bias)")

# Output channels of each 3x3 convolution (each followed by a ReLU); "M": a 2x2 max pool.
VGG19_LAYOUT: tuple[int | str, ...] = (
    *(64, 64, "M"),
    *(128, 128, "M"),
    *(256, 256, 256, 256, "M"),
    *(512, 512, 512, 512, "M"),
    *(512, 512, 512, 512, "M"),
)


@cache
def layer_names() -> tuple[str, ...]:
    """Names of ``features[0] .. features[36]`` in order."""
    names: list[str] = []
    block, conv = 1, 0
    for item in VGG19_LAYOUT:
        if item == "M":
            names.append(f"pool{block}")
            block, conv = block + 1, 0
        else:
            conv += 1
            names += [f"conv{block}_{conv}", f"relu{block}_{conv}"]
    return tuple(names)


@cache
def layer_indices() -> dict[str, int]:
    """Map a layer name (``conv4_2``) to its index in ``features`` (21)."""
    return {name: i for i, name in enumerate(layer_names())}


def layer_index(name: str, *, field: str = "layers") -> int:
    """Index of ``name`` in ``features``; the error naming ``field`` for an unknown name."""
    try:
        return layer_indices()[name]
    except KeyError:
        raise ParamError(
            f"{field}: unknown VGG19 layer {quote(name)}; valid names are conv1_1..conv5_4, "
            "relu1_1..relu5_4 and pool1..pool5",
            field=field,
        ) from None


@cache
def conv_shapes() -> dict[int, tuple[int, int]]:
    """``features`` index of every conv layer -> (out_channels, in_channels)."""
    shapes: dict[int, tuple[int, int]] = {}
    index, channels = 0, 3
    for item in VGG19_LAYOUT:
        if item == "M":
            index += 1
        else:
            shapes[index] = (int(item), channels)
            channels = int(item)
            index += 2
    return shapes


def depth_through(conv_index: int) -> int:
    """How many layers of ``features`` weights ending at the conv ``conv_index`` serve: that
    conv and the ReLU after it."""
    return conv_index + 2


def check_depth(names: Iterable[str], field: str, depth: int) -> None:
    """Raise :class:`ParamError` if a (known) layer in ``names`` is not among the first
    ``depth`` layers of ``features``, the ones the loaded weights cover."""
    for name in names:
        if layer_index(name, field=field) >= depth:
            raise ParamError(
                f"layer {quote(name)} is deeper than the loaded weights allow "
                f"(they end at {layer_names()[depth - 1]})",
                field=field,
            )


def min_input_side(names: tuple[str, ...] | list[str]) -> int:
    """Smallest image side (pixels) that still reaches every layer in ``names``."""
    deepest = max(layer_index(n) for n in names)
    return 2 ** sum(1 for name in layer_names()[:deepest] if name.startswith("pool"))


def deepest_conv(keys: Iterable[str]) -> int | None:
    """``features`` index of the deepest conv among a weights file's tensor names
    (full-model or bare ``features`` keys), or None; a check that reads no tensor, where
    :func:`nst.weights.features_state_dict` validates them all."""
    indices = [int(m[1]) for k in keys if (m := CONV_KEY.fullmatch(k))]
    return max(indices, default=None)
