import pytest

from nst.errors import ParamError
from nst.layers import conv_shapes, layer_index, layer_names


@pytest.mark.parametrize(
    "name, index",
    [
        ("conv1_1", 0),
        ("relu1_1", 1),
        ("pool1", 4),
        ("conv2_1", 5),
        ("conv3_1", 10),
        ("conv4_1", 19),
        ("conv4_2", 21),
        ("relu4_2", 22),
        ("conv5_1", 28),
        ("relu5_1", 29),
        ("conv5_4", 34),
        ("pool5", 36),
    ],
)
def test_layer_index_matches_torchvision_features(name, index):
    assert layer_index(name) == index


def test_every_torchvision_module_is_named():
    from torchvision.models import vgg19

    features = vgg19(weights=None).features
    names = layer_names()
    assert len(names) == len(features) == 37
    for name, module in zip(names, features):
        kind = type(module).__name__
        expected = {"conv": "Conv2d", "relu": "ReLU", "pool": "MaxPool2d"}
        assert expected[name.rstrip("0123456789_")] == kind


def test_conv_shapes_follow_vgg19():
    shapes = conv_shapes()
    assert len(shapes) == 16
    assert shapes[0] == (64, 3) and shapes[21] == (512, 512) and shapes[10] == (256, 128)


def test_unknown_layer_names_the_field():
    with pytest.raises(ParamError) as err:
        layer_index("conv6_1", field="style_layers")
    assert err.value.field == "style_layers" and "conv6_1" in err.value.message


def test_min_input_side_counts_pools_before_the_deepest_layer():
    from nst.layers import min_input_side

    assert min_input_side(["relu1_1"]) == 1
    assert min_input_side(["conv2_1"]) == 2
    assert min_input_side(["relu1_1", "relu5_1"]) == 16


def test_the_layout_is_torchvisions_vgg19():
    from torchvision.models.vgg import cfgs

    from nst.layers import VGG19_LAYOUT

    assert list(VGG19_LAYOUT) == cfgs["E"]


def test_the_network_is_torchvisions_vgg19_features_with_relus_not_in_place():
    from torch import nn
    from torchvision.models.vgg import cfgs, make_layers

    from nst.vgg import vgg19_layers

    ours, theirs = vgg19_layers(37), make_layers(cfgs["E"])
    for mine, reference in zip(ours, theirs, strict=True):
        if isinstance(reference, nn.ReLU):
            assert isinstance(mine, nn.ReLU) and not mine.inplace
        else:
            assert repr(mine) == repr(reference)
    shapes = {k: v.shape for k, v in ours.state_dict().items()}
    assert shapes == {k: v.shape for k, v in theirs.state_dict().items()}
    assert all(p.is_meta for p in ours.parameters())  # nothing allocated before the weights


def test_the_engine_and_its_command_never_import_torchvision():
    """torchvision's import costs about a second of every start; only fetching weights and
    masks need it."""
    import subprocess
    import sys

    code = "import sys, nst, nst.cli; print(sorted(m for m in sys.modules if 'torchvision' in m))"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout.strip() == "[]"
