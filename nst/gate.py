"""The one gate a job passes before any work: everything a run will need, checked at once.

:class:`nst.params.StyleParams` checks each parameter on its own when it is made; this
gate checks what depends on the images, the loaded weights and the sizes of every
coarse-to-fine level, so that nothing can fail for bad input once the work has started.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from .errors import ParamError
from .imageio import source_size
from .job import Job
from .layers import check_depth
from .params import MAX_STYLES, StyleParams

if TYPE_CHECKING:
    from .vgg import VGGFeatures


def check_style_count(count: int, max_styles: int = MAX_STYLES) -> None:
    """Raise unless there are 1 to ``max_styles`` (at most :data:`MAX_STYLES`) style images.
    The gate checks the engine's own limit; a server checks its lower one with this before
    decoding any image."""
    if not 1 <= count <= max_styles:
        raise ParamError(
            f"give 1 to {max_styles} style images, got {count}",
            field="style",
            code="limit_exceeded" if count > max_styles else None,
        )


def check_layers_depth(params: StyleParams, depth: int) -> None:
    """Raise unless every content and style layer is among the first ``depth`` layers of
    VGG19's ``features`` (what the loaded weights cover: ``len(VGGFeatures.layers)``)."""
    check_depth(params.content_layers, "content_layers", depth)
    check_depth(params.style_layers, "style_layers", depth)


def check_job(job: Job, net: VGGFeatures) -> None:
    """Raise the :class:`ParamError` any part of ``job``'s run would raise, at no cost."""
    from .masks import check_mask  # torch: check_style_count and check_layers_depth need none

    p = job.params
    check_style_count(len(job.styles))
    if p.style_weights and len(p.style_weights) != len(job.styles):
        raise ParamError(
            f"style_weights has {len(p.style_weights)} values for {len(job.styles)} style images",
            field="style_weights",
        )
    if job.mask is not None:
        if p.style_weights:
            raise ParamError(
                "style_weights blend styles everywhere; with a mask each region takes one "
                "style, so leave style_weights out",
                field="style_weights",
            )
        check_mask(job.mask, source_size(job.content), len(job.styles))
    if p.init == "image" and job.init_image is None:
        raise ParamError("init='image' needs an init image", field="init_image")
    if p.init != "image" and job.init_image is not None:
        raise ParamError(
            f"an init image is only used with init='image' (init is {p.init!r})", field="init"
        )
    check_layers_depth(p, len(net.layers))
    need = job.min_side()
    width, height = job.output_size()
    if min(width, height) < need:
        raise ParamError(
            f"the output would be {width}x{height}; the chosen layers need at least {need} px "
            "on the shorter side",
            field="size",
        )
    for level in job.levels():
        wanted = max(round(level.size * p.style_scale), need)
        for style in job.styles:
            # A sliver-shaped style must be enlarged until its short side reaches ``need``;
            # refuse shapes that would blow up memory that way (at every level's size).
            if job.style_side(style, level.size) > 4 * wanted:
                raise ParamError(
                    f"a {style.width}x{style.height} style image is too elongated for size "
                    f"{level.size}",
                    field="style",
                )
