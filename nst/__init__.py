"""Neural style transfer (Gatys, Ecker & Bethge) on VGG19: the engine, free of any server.

The engine's API is what this module exports; its submodules are its parts (docs/engine.md).

- Running: :class:`Stylizer` (load the weights once, keep style statistics in a
  :class:`StyleCache`, :meth:`~Stylizer.check` a
  :class:`Job`, :meth:`~Stylizer.stylize` it or a batch), :class:`StyleParams` (every
  parameter, declared once), :class:`Progress` and :class:`LossTerms` for a ``Callback``,
  :class:`Result`, and why a job stopped early (:data:`STOP_REASONS`).
- Images: :func:`decode_image` (bounded, colour-managed), :func:`encode_image`,
  :func:`content_type`, :func:`resize_longest`.
- Errors: every input error is an :class:`InputError` (:class:`ParamError`,
  :class:`ImageError`) with a code and the field at fault; :class:`DeadlineExceeded`,
  :class:`WeightsError`; :func:`quote` shows a caller's value in a message.
- Limits and cost, for a caller that serves others: :data:`MAX_STYLES` and
  :func:`check_style_count`, :data:`PRECISIONS`, :data:`COMPILE_MODES`, :func:`work_pixels` and
  :func:`requested_work` (a job's cost in pixels through VGG), and :func:`declared` /
  :func:`parameter_ranges` to declare and describe settings the way the parameters are.
"""

from .cost import requested_work, work_pixels
from .errors import (
    DeadlineExceeded,
    ImageError,
    InputError,
    NSTError,
    ParamError,
    WeightsError,
    quote,
)
from .gate import MAX_STYLES, check_layers_depth, check_style_count
from .imageio import content_type, decode_image, encode_image, resize_longest
from .job import Job
from .objective import COMPILE_MODES
from .params import StyleParams, declared, parameter_ranges
from .precision import PRECISIONS
from .progress import STOP_REASONS, Callback, LossTerms, Progress, Result, StopReason
from .style_cache import StyleCache
from .stylizer import Stylizer

__all__ = [
    "COMPILE_MODES",
    "MAX_STYLES",
    "PRECISIONS",
    "STOP_REASONS",
    "Callback",
    "DeadlineExceeded",
    "ImageError",
    "InputError",
    "Job",
    "LossTerms",
    "NSTError",
    "ParamError",
    "Progress",
    "Result",
    "StopReason",
    "StyleCache",
    "StyleParams",
    "Stylizer",
    "WeightsError",
    "check_layers_depth",
    "check_style_count",
    "content_type",
    "declared",
    "decode_image",
    "encode_image",
    "parameter_ranges",
    "quote",
    "requested_work",
    "resize_longest",
    "work_pixels",
]
