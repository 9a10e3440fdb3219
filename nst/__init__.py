"""Neural style transfer (Gatys, Ecker & Bethge) on VGG19: the engine, free of any server."""

from .errors import ImageError, InputError, NSTError, ParamError, WeightsError
from .imageio import decode_image, encode_image
from .job import Job
from .params import StyleParams
from .progress import LossTerms, Progress, Result
from .stylizer import Stylizer

__all__ = [
    "ImageError",
    "InputError",
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
