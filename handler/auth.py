"""Bearer API keys checked by the handler, for deployments whose keys live in a Secret.

TorchServe 0.12's own token authorisation generates random keys per process that expire
(``token_expiration_min``), so replicas behind one Service cannot share them. Deployments that
need shared, operator-chosen keys (deploy/k8s) turn TorchServe's check off and point
``NST_API_KEYS_FILE`` at a mounted Secret: one key per line (blank lines and lines starting
with ``#`` are not keys), re-read when the file changes.
"""

from __future__ import annotations

import hmac
import os
from pathlib import Path

KEYS_FILE_ENV = "NST_API_KEYS_FILE"


class Unauthorized(Exception):
    """No or wrong ``Authorization: Bearer`` key (answered with 401): not a value error."""

    code = "unauthorized"

    def __init__(self, message: str, *, field: str = "authorization"):
        super().__init__(message)
        self.message, self.field = message, field


class ApiKeys:
    """The accepted keys, from a file that may be rotated while the worker runs."""

    def __init__(self, path: Path):
        self.path = path
        self._mtime: float | None = None
        self._keys: list[bytes] = []

    @classmethod
    def from_env(cls) -> ApiKeys | None:
        """Keys from ``$NST_API_KEYS_FILE``; None when the variable is unset (no check)."""
        path = os.environ.get(KEYS_FILE_ENV)
        if not path:
            return None
        keys = cls(Path(path))
        if not keys.current():
            raise ValueError(f"{KEYS_FILE_ENV}={path} holds no keys")
        return keys

    def current(self) -> list[bytes]:
        """The keys, re-read if the file changed (Kubernetes updates mounted Secrets)."""
        mtime = self.path.stat().st_mtime
        if mtime != self._mtime:
            lines = self.path.read_text().splitlines()
            keys = (line.strip() for line in lines)
            self._keys = [key.encode() for key in keys if key and not key.startswith("#")]
            self._mtime = mtime
        return self._keys

    def check(self, headers: dict[str, str]) -> bytes:
        """Raise Unauthorized unless ``authorization`` is ``Bearer <a current key>``; the key."""
        scheme, _, token = headers.get("authorization", "").partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            raise Unauthorized("missing Authorization: Bearer <key> header", field="authorization")
        given = token.strip().encode()
        # Compare against every key, without stopping early, so timing says nothing.
        matches = [hmac.compare_digest(given, key) for key in self.current()]
        if not any(matches):
            raise Unauthorized("the API key is not valid", field="authorization")
        return given
