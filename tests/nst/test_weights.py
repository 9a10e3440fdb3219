import json

import pytest
import torch
from safetensors.torch import save_file
from torchvision.models.vgg import cfgs, make_layers

from nst.errors import WeightsError
from nst.layers import layer_names
from nst.weights import TORCHVISION_CONVENTION, InputConvention, load_weights, save_weights

CAFFE = InputConvention("BGR", 255.0, (103.939, 116.779, 123.68), (1.0, 1.0, 1.0))


def synthetic_features(last_index: int = 28) -> dict[str, torch.Tensor]:
    """A features state dict with torchvision's real key names and shapes."""
    state = make_layers(cfgs["E"]).state_dict()
    return {f"features.{k}": v for k, v in state.items() if int(k.split(".")[0]) <= last_index}


def test_caffe_convention_is_bgr_255_minus_mean():
    rgb = torch.zeros(1, 3, 1, 1)
    rgb[0, 0] = 1.0  # pure red
    x = CAFFE.to_model(rgb).flatten().tolist()
    assert x == pytest.approx([-103.939, -116.779, 255 - 123.68])


def test_torchvision_convention_normalises_rgb():
    rgb = torch.full((1, 3, 1, 1), 0.5)
    expected = [
        (0.5 - m) / s for m, s in zip(TORCHVISION_CONVENTION.mean, TORCHVISION_CONVENTION.std)
    ]
    assert TORCHVISION_CONVENTION.to_model(rgb).flatten().tolist() == pytest.approx(expected)


def test_real_weights_declare_caffe_convention(weights_path):
    weights = load_weights(weights_path)
    assert weights.convention == CAFFE
    assert layer_names()[weights.last_index] == "conv5_1"
    assert len(weights.state_dict) == 26


def test_save_and_load_round_trip(tmp_path):
    path = tmp_path / "w.safetensors"
    state = synthetic_features(21)
    save_weights(path, state, TORCHVISION_CONVENTION)
    loaded = load_weights(path)
    assert (
        loaded.convention == TORCHVISION_CONVENTION
        and layer_names()[loaded.last_index] == "conv4_2"
    )
    assert torch.equal(loaded.state_dict["features.21.weight"], state["features.21.weight"])


def test_pth_is_loaded_weights_only(tmp_path):
    path = tmp_path / "vgg.pth"
    full = synthetic_features(34)
    full["classifier.0.weight"] = torch.zeros(2, 2)
    torch.save(full, path)
    weights = load_weights(path)
    assert (
        weights.convention == TORCHVISION_CONVENTION
        and layer_names()[weights.last_index] == "conv5_4"
    )


class _Evil:
    def __reduce__(self):
        return (print, ("pickle code ran",))


def test_pickle_payload_is_refused(tmp_path):
    path = tmp_path / "evil.pth"
    torch.save({"features.0.weight": _Evil()}, path)
    with pytest.raises(WeightsError, match="weights-only"):
        load_weights(path)


@pytest.mark.parametrize(
    "mutate, message",
    [
        (lambda s: s.pop("features.10.weight"), "features.10.weight .*conv3_1.* missing"),
        (lambda s: s.pop("features.7.bias"), "features.7.bias"),
        (
            lambda s: s.__setitem__("features.21.weight", torch.zeros(512, 256, 3, 3)),
            r"features.21.weight has shape \(512, 256, 3, 3\)",
        ),
        (lambda s: s.__setitem__("features.1.weight", torch.zeros(3)), "not a conv layer"),
        (lambda s: s.__setitem__("encoder.weight", torch.zeros(3)), "unexpected key"),
    ],
)
def test_wrong_or_partial_files_fail_clearly(tmp_path, mutate, message):
    state = synthetic_features()
    mutate(state)
    path = tmp_path / "bad.safetensors"
    save_file(state, str(path), metadata=CAFFE.to_metadata())
    with pytest.raises(WeightsError, match=message):
        load_weights(path)


def test_classifier_only_file_fails(tmp_path):
    path = tmp_path / "head.safetensors"
    save_file({"classifier.0.weight": torch.zeros(1)}, str(path), metadata=CAFFE.to_metadata())
    with pytest.raises(WeightsError, match="no VGG19 features"):
        load_weights(path)


def test_missing_convention_metadata_fails(tmp_path):
    path = tmp_path / "nometa.safetensors"
    save_file(synthetic_features(), str(path))
    with pytest.raises(WeightsError, match="channel_order, pixel_range, mean, std"):
        load_weights(path)


def test_bad_convention_values_fail(tmp_path):
    path = tmp_path / "badmeta.safetensors"
    meta = dict(CAFFE.to_metadata(), channel_order="GRB")
    save_file(synthetic_features(), str(path), metadata=meta)
    with pytest.raises(WeightsError, match="RGB or BGR"):
        load_weights(path)
    meta = dict(CAFFE.to_metadata(), mean=json.dumps([1, 2]))
    save_file(synthetic_features(), str(path), metadata=meta)
    with pytest.raises(WeightsError, match="3 values"):
        load_weights(path)


def test_not_a_weights_file_fails(tmp_path):
    path = tmp_path / "junk.safetensors"
    path.write_bytes(b"this is not safetensors")
    with pytest.raises(WeightsError, match="not a readable safetensors"):
        load_weights(path)
    with pytest.raises(WeightsError, match="not found"):
        load_weights(tmp_path / "absent.safetensors")


def test_layer_deeper_than_weights_is_a_param_error(tmp_path):
    from nst.errors import ParamError
    from nst.layers import check_depth, deepest_conv
    from nst.vgg import VGGFeatures

    path = tmp_path / "short.safetensors"
    save_weights(path, synthetic_features(10), CAFFE)
    net = VGGFeatures(load_weights(path))
    with pytest.raises(ParamError, match="deeper than the loaded weights") as err:
        check_depth(["relu4_2"], "content_layers", len(net.layers))
    assert err.value.field == "content_layers"
    check_depth(["relu3_1", "conv1_1"], "style_layers", len(net.layers))
    assert deepest_conv(synthetic_features(10)) == 10
    assert deepest_conv({"0.weight": 0, "2.bias": 0, "classifier.6.weight": 0}) == 2
    assert deepest_conv(["classifier.0.weight"]) is None
