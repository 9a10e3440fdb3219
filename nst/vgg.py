"""VGG19 feature extractor: named activations from one truncated forward pass."""

from __future__ import annotations

import copy
from collections.abc import Iterable
from typing import cast

import torch
from torch import nn

from .layers import conv_shapes, depth_through, layer_index, layer_names
from .weights import VGGWeights

# (index in ``features``, name) of each layer a pass must return, sorted by index: what
# :meth:`VGGFeatures.activations` and the objective take, so a step does no name lookups.
LayerPositions = tuple[tuple[int, str], ...]


class VGGFeatures(nn.Module):
    """Frozen, eval-mode VGG19 ``features`` cut after the deepest conv the weights cover.

    ReLUs are not in place, so an activation returned for ``conv4_2`` is not overwritten by
    ``relu4_2``. ``forward`` stops at the deepest requested layer. :meth:`keep_copy_in`
    adds a copy of the layers in a reduced precision for the passes that run in it.
    """

    def __init__(self, weights: VGGWeights):
        super().__init__()
        # Conv layers the weights cover plus the ReLU after the deepest one, given the
        # weights' own tensors (no random initialisation to overwrite, no copy).
        self.layers = vgg19_layers(depth_through(weights.last_index))
        missing, unexpected = self.layers.load_state_dict(
            {k.removeprefix("features."): v for k, v in weights.state_dict.items()},
            strict=True,
            assign=True,
        )
        assert not missing and not unexpected
        self.reduced = nn.ModuleDict()  # dtype name -> self.layers cast to that dtype
        self.requires_grad_(False)
        self.eval()
        self.convention = weights.convention

    def keep_copy_in(self, dtype: torch.dtype) -> None:
        """Keep the layers cast to ``dtype`` (once, here), for passes in that precision.

        The same arithmetic as ``torch.autocast`` (weights, bias and input cast to
        ``dtype``), without its cost: autocast caches casts only of weights that need a
        gradient, so it casts these frozen ones again at every pass (docs/benchmarks.md).
        """
        if dtype != torch.float32:
            self.reduced[dtype_name(dtype)] = copy.deepcopy(self.layers).to(dtype)

    def forward(
        self,
        x: torch.Tensor,
        names: Iterable[str],
        pooling: str = "max",
        dtype: torch.dtype = torch.float32,
    ) -> dict[str, torch.Tensor]:
        """Activations of ``names`` for network input ``x`` (B, 3, H, W), computed in
        ``dtype`` (other than float32: through the copy :meth:`keep_copy_in` kept)."""
        return self.activations(x, layer_positions(names), pooling, dtype)

    def activations(
        self,
        x: torch.Tensor,
        positions: LayerPositions,
        pooling: str = "max",
        dtype: torch.dtype = torch.float32,
    ) -> dict[str, torch.Tensor]:
        """:meth:`forward` with the layers given as :func:`layer_positions` (no name
        lookups, so ``torch.compile`` traces only tensor work)."""
        if dtype == torch.float32:
            return self._run(self.layers, x, positions, pooling)
        layers = cast(nn.Sequential, self.reduced[dtype_name(dtype)])  # from keep_copy_in
        return self._run(layers, x.to(dtype), positions, pooling)

    @staticmethod
    def _run(
        layers: nn.Sequential, x: torch.Tensor, positions: LayerPositions, pooling: str
    ) -> dict[str, torch.Tensor]:
        out: dict[str, torch.Tensor] = {}
        deepest = max(i for i, _ in positions)
        names = dict(positions)
        for i, module in enumerate(layers[: deepest + 1]):
            if isinstance(module, nn.MaxPool2d) and pooling == "avg":
                # Gatys et al. report smoother results with average pooling.
                x = nn.functional.avg_pool2d(x, kernel_size=2, stride=2)
            else:
                x = module(x)
            if i in names:
                out[names[i]] = x
        return out


def vgg19_layers(count: int) -> nn.Sequential:
    """The first ``count`` modules of VGG19's ``features`` as torchvision's ``make_layers``
    builds them (no batch norm), with ReLUs not in place and parameters on the meta device:
    nothing is allocated or initialised until weights are assigned."""
    shapes = conv_shapes()
    modules: list[nn.Module] = []
    with torch.device("meta"):
        for index, name in enumerate(layer_names()[:count]):
            if index in shapes:
                out_channels, in_channels = shapes[index]
                modules.append(nn.Conv2d(in_channels, out_channels, 3, padding=1))
            elif name.startswith("relu"):
                modules.append(nn.ReLU())
            else:
                modules.append(nn.MaxPool2d(kernel_size=2, stride=2))
    return nn.Sequential(*modules)


def dtype_name(dtype: torch.dtype) -> str:
    """``torch.bfloat16`` -> ``"in_bfloat16"``, a module key (``bfloat16`` alone is a
    method of every module)."""
    return "in_" + str(dtype).removeprefix("torch.")


def layer_positions(names: Iterable[str]) -> LayerPositions:
    """The :data:`LayerPositions` of layer ``names``."""
    return tuple(sorted({(layer_index(n), n) for n in names}))
