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


DEFAULT_MAX_BYTES = 512 * 2**20  # what the cache may hold, all entries together


def statistics_bytes(stats: Statistics) -> int:
    """Memory held by one style's targets (every tensor of every layer)."""
    return sum(t.numel() * t.element_size() for stat in stats.values() for t in stat)


class StyleCache:
    """Style targets by :func:`style_key`, least recently used first out; counts hits/misses.

    Bounded twice: at most ``capacity`` entries and ``max_bytes`` of tensors in all (one
    sliced-Wasserstein style over many deep layers holds ~200 MB, a Gram style a few MB); an
    entry larger than ``max_bytes`` on its own is not kept."""

    def __init__(self, capacity: int, max_bytes: int = DEFAULT_MAX_BYTES):
        if capacity < 0 or max_bytes < 0:
            raise ValueError("capacity and max_bytes must be >= 0")
        self.capacity = capacity
        self.max_bytes = max_bytes
        self.bytes = 0  # held now
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
        """Store targets, evicting the least recently used beyond ``capacity`` entries or
        ``max_bytes``."""
        size = statistics_bytes(stats)
        if self.capacity == 0 or size > self.max_bytes:
            return
        self._drop(key)
        self._entries[key] = stats
        self.bytes += size
        while len(self._entries) > self.capacity or self.bytes > self.max_bytes:
            self._drop(next(iter(self._entries)))

    def _drop(self, key: str) -> None:
        stats = self._entries.pop(key, None)
        if stats is not None:
            self.bytes -= statistics_bytes(stats)
