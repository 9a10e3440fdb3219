"""nst.style_cache: keys, LRU bounds, and results that do not depend on a hit."""

from __future__ import annotations

import torch
from PIL import Image

from nst import Job, StyleParams, Stylizer
from nst.style_cache import StyleCache, style_key


def grams(value: float) -> dict[str, torch.Tensor]:
    return {"relu1_1": torch.full((1, 2, 2), value)}


def test_lru_evicts_the_least_recently_used_and_counts_lookups():
    cache = StyleCache(2)
    cache.put("a", grams(1))
    cache.put("b", grams(2))
    assert cache.get("a") is not None  # a is now the most recent
    cache.put("c", grams(3))  # evicts b
    assert cache.get("b") is None and cache.get("c") is not None and len(cache) == 2
    assert (cache.hits, cache.misses) == (2, 1)
    off = StyleCache(0)
    off.put("a", grams(1))
    assert off.get("a") is None and len(off) == 0


def test_key_follows_pixels_size_and_target_settings():
    image = Image.new("RGB", (40, 30), (10, 20, 30))
    other = Image.new("RGB", (40, 30), (10, 20, 31))
    p = StyleParams()
    base = style_key(image, 64, p)
    assert style_key(image.copy(), 64, p) == base  # the same pixels, another object
    assert style_key(other, 64, p) != base
    assert style_key(image, 65, p) != base
    assert style_key(image, 64, StyleParams(pooling="avg")) != base
    assert style_key(image, 64, StyleParams(style_layers=("relu1_1",))) != base
    # Weights that do not shape the targets share the entry.
    assert style_key(image, 64, StyleParams(style_weight=100, steps=3, size=99)) == base


def test_a_cache_hit_gives_the_same_image_and_skips_the_style_pass(weights_path, images):
    content, style = images["astronaut.png"], images["starry_night.jpg"]
    params = StyleParams(size=48, steps=4, levels=1)
    cold = Stylizer(str(weights_path), style_cache_size=0)
    warm = Stylizer(str(weights_path), style_cache_size=4)
    expected = cold.stylize(Job(content, [style], params))
    first = warm.stylize(Job(content, [style], params))
    other_content = images["chelsea.png"]
    second = warm.stylize(Job(other_content, [style.copy()], params))  # same style, new photo
    assert (warm.style_cache.misses, warm.style_cache.hits) == (1, 1)
    assert first.image.tobytes() == expected.image.tobytes()
    assert (
        second.image.tobytes() == cold.stylize(Job(other_content, [style], params)).image.tobytes()
    )
    luminance = StyleParams(size=48, steps=2, levels=1, preserve_color="luminance")
    warm.stylize(Job(content, [style], luminance))  # derived from the content: not cached
    assert (warm.style_cache.misses, warm.style_cache.hits) == (1, 1)


def test_new_lookups_reports_each_lookup_once():
    cache = StyleCache(1)
    cache.get("a")
    cache.put("a", grams(1))
    cache.get("a")
    assert cache.new_lookups() == (1, 1)
    cache.get("a")
    assert cache.new_lookups() == (1, 0) and cache.new_lookups() == (0, 0)


def test_the_cache_is_bounded_in_bytes_too():
    import torch

    from nst.style_cache import StyleCache, statistics_bytes

    def stats(mb: int) -> dict:
        return {"conv1_1": (torch.zeros(mb * 2**18),)}  # float32: mb MiB

    assert statistics_bytes(stats(3)) == 3 * 2**20
    cache = StyleCache(capacity=32, max_bytes=10 * 2**20)
    for i in range(5):
        cache.put(f"s{i}", stats(3))
    assert cache.bytes == 9 * 2**20 and len(cache) == 3  # the two oldest went
    assert cache.get("s0") is None and cache.get("s4") is not None
    cache.put("huge", stats(11))  # larger than the whole cache: not kept, nothing evicted
    assert cache.get("huge") is None and len(cache) == 3
    cache.put("s4", stats(1))  # replacing an entry counts its new size only
    assert cache.bytes == 7 * 2**20
