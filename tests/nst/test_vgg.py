"""nst.vgg: a pass through the layers cast once equals the autocast pass it replaces."""

import torch

from nst.vgg import VGGFeatures, layer_positions
from nst.weights import load_weights

NAMES = ["relu1_1", "relu2_1", "relu3_1", "relu4_1", "relu4_2", "relu5_1"]


def features_and_input_gradient(net, x, dtype, cast_once):
    """Features of ``x`` in ``dtype`` and the gradient of a loss of them at ``x``: through
    the cast copy when ``cast_once``, else the float32 layers under autocast."""
    x = x.clone().requires_grad_(True)
    positions = layer_positions(NAMES)
    if cast_once:
        features = net.activations(x, positions, "max", dtype)
    else:
        with torch.autocast("cpu", dtype=dtype):
            features = net._run(net.layers, x, positions, "max")
    sum(f.float().square().mean() for f in features.values()).backward()
    return features, x.grad


def test_layers_cast_once_match_autocast_bit_for_bit(weights_path):
    net = VGGFeatures(load_weights(str(weights_path)))
    net.keep_copy_in(torch.bfloat16)
    x = torch.rand(1, 3, 32, 32, generator=torch.Generator().manual_seed(0))
    ours, our_grad = features_and_input_gradient(net, x, torch.bfloat16, cast_once=True)
    theirs, their_grad = features_and_input_gradient(net, x, torch.bfloat16, cast_once=False)
    for name in NAMES:
        assert ours[name].dtype == torch.bfloat16
        assert torch.equal(ours[name], theirs[name]), name
    assert our_grad.dtype == torch.float32 and torch.equal(our_grad, their_grad)


def test_float32_passes_use_the_float32_layers(weights_path):
    net = VGGFeatures(load_weights(str(weights_path)))
    net.keep_copy_in(torch.bfloat16)
    net.keep_copy_in(torch.float32)  # nothing to keep: the layers are float32
    assert list(net.reduced.keys()) == ["in_bfloat16"]
    x = torch.rand(1, 3, 32, 32)
    features = net(x, ["relu2_1"])
    assert features["relu2_1"].dtype == torch.float32
    assert torch.equal(
        features["relu2_1"], net._run(net.layers, x, layer_positions(["relu2_1"]), "max")["relu2_1"]
    )
