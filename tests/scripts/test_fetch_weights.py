"""The fetch script's offline steps: hash check and conversion (no download here)."""

import hashlib

import pytest
import torch
from torchvision.models import vgg19

from nst.weights import TORCHVISION_CONVENTION, load_weights
from tests.scripts_loader import load_script

fetch = load_script("fetch_weights")


def test_converts_a_full_torchvision_state_dict(tmp_path):
    model = vgg19(weights=None)  # real key names and shapes, random values
    checkpoint = tmp_path / "vgg19-dcbb9e9d.pth"
    torch.save(model.state_dict(), checkpoint)
    out = tmp_path / "vgg19.safetensors"
    assert fetch.convert(checkpoint, out, "test") == 32  # 16 convs x (weight, bias)
    weights = load_weights(out)
    assert weights.convention == TORCHVISION_CONVENTION
    assert weights.deepest_layer == "conv5_4"
    assert torch.equal(weights.state_dict["features.34.weight"], model.features[34].weight)


def test_hash_prefix_comes_from_the_official_url():
    assert fetch.expected_prefix("https://download.pytorch.org/models/vgg19-dcbb9e9d.pth") \
        == "dcbb9e9d"


def test_verify_rejects_a_wrong_checksum():
    url = "https://example.invalid/vgg19-dcbb9e9d.pth"
    fetch.verify("dcbb9e9d" + "0" * 56, url, None)
    with pytest.raises(SystemExit, match="does not start with"):
        fetch.verify(hashlib.sha256(b"other").hexdigest(), url, None)
    with pytest.raises(SystemExit, match="mismatch"):
        fetch.verify("dcbb9e9d" + "0" * 56, url, "dcbb9e9d" + "1" * 56)
