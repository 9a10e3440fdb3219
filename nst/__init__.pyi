"""The engine's API (see ``__init__.py``): what ``nst`` exports, loaded on first use."""

from .allocator import reuse_freed_memory
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
from .gate import check_layers_depth, check_style_count
from .imageio import content_type, decode_image, encode_image, resize_longest
from .job import Job
from .params import (
    COMPILE_MODES,
    MAX_STYLES,
    PRECISIONS,
    StyleParams,
    declared,
    parameter_ranges,
)
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
    "reuse_freed_memory",
    "work_pixels",
]
