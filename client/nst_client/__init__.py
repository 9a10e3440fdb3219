"""Client of the style-transfer server (requests and Pillow only; no torch).

from nst_client import Client
image = Client("http://127.0.0.1:8080").stylize("photo.jpg", "style.jpg", size=256)
"""

from .client import Client, Job, Progress, Result
from .errors import (
    ConnectionFailed,
    InternalServerError,
    InvalidRequest,
    NSTClientError,
    ServerBusy,
    ServerError,
    StreamFailed,
    TooLarge,
    Unauthorized,
)

__all__ = [
    "Client",
    "ConnectionFailed",
    "InternalServerError",
    "InvalidRequest",
    "Job",
    "NSTClientError",
    "Progress",
    "Result",
    "ServerBusy",
    "ServerError",
    "StreamFailed",
    "TooLarge",
    "Unauthorized",
]
