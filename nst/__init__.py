"""Neural style transfer (Gatys, Ecker & Bethge) on VGG19: the engine, free of any server."""

from .engine import LossTerms, Progress, Result, Stylizer
from .errors import ImageError, NSTError, ParamError, WeightsError
from .imageio import decode_image, encode_image
from .job import Job
from .params import StyleParams

__all__ = [
    "ImageError",
    "Job",
    "LossTerms",
    "NSTError",
    "ParamError",
    "Progress",
    "Result",
    "StyleParams",
    "Stylizer",
    "WeightsError",
    "decode_image",
    "encode_image",
]
