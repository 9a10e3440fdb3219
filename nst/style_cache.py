"""A bounded LRU of style targets (:mod:`nst.style_stats`), so a repeated style skips its
VGG pass.

A service sees the same few styles again and again; their targets depend only on the style
image, the size it is resized to and the layers and pooling, never on the content, so they
are cached per style image. The colour modes that recolour the style from the content
(``luminance``, ``histogram``) are not cached.
"""

from __future__ import annotations

import hashlib
from collections import OrderedDict

from PIL import Image

from .params import StyleParams
from .style_stats import Statistics


def style_key(image: Image.Image, side: int, params: StyleParams) -> str:
    """Digest of the image's pixels and of the settings that shape its targets."""
    digest = hashlib.blake2b(digest_size=20)
    digest.update(
        f"{image.mode}|{image.size}|{side}|{params.pooling}|{params.style_loss}|"
        f"{','.join(params.style_layers)}|".encode()
    )
    digest.update(image.tobytes())
    return digest.hexdigest()


class StyleCache:
    """Style targets by :func:`style_key`, least recently used first out; counts hits/misses."""

    def __init__(self, capacity: int):
        if capacity < 0:
            raise ValueError("capacity must be >= 0")
        self.capacity = capacity
        self.hits = 0
        self.misses = 0
        self._reported = (0, 0)
        self._entries: OrderedDict[str, Statistics] = OrderedDict()

    def new_lookups(self) -> tuple[int, int]:
        """(hits, misses) since the last call, for counters exported elsewhere."""
        new = (self.hits - self._reported[0], self.misses - self._reported[1])
        self._reported = (self.hits, self.misses)
        return new

    def __len__(self) -> int:
        return len(self._entries)

    def get(self, key: str) -> Statistics | None:
        """The cached targets (and mark them recently used), or None; counts the lookup."""
        stats = self._entries.get(key)
        if stats is None:
            self.misses += 1
            return None
        self.hits += 1
        self._entries.move_to_end(key)
        return stats

    def put(self, key: str, stats: Statistics) -> None:
        """Store targets, evicting the least recently used beyond ``capacity``."""
        if self.capacity == 0:
            return
        self._entries[key] = stats
        self._entries.move_to_end(key)
        while len(self._entries) > self.capacity:
            self._entries.popitem(last=False)
