import dataclasses

import pytest

from nst.errors import ParamError
from nst.params import StyleParams


def test_defaults_are_valid_and_documented():
    params = StyleParams()
    assert params.optimizer == "lbfgs" and params.init == "matched"
    assert params.content_layers == ("relu4_2",)
    assert params.style_layers == ("relu1_1", "relu2_1", "relu3_1", "relu4_1", "relu5_1")
    for f in dataclasses.fields(StyleParams):
        assert f.metadata["help"], f.name


def test_parses_form_strings_and_bytes():
    p = StyleParams.from_mapping(
        {
            "steps": bytearray(b"10"),
            "size": "128",
            "style_weight": "2e3",
            "optimizer": "ADAM",
            "style_weights": "1, 3",
            "style_layers": "relu1_1,relu2_1",
            "seed": 7.0,
        }
    )
    assert (p.steps, p.size, p.style_weight, p.optimizer) == (10, 128, 2000.0, "adam")
    assert p.style_weights == (1.0, 3.0) and p.style_layers == ("relu1_1", "relu2_1")
    assert p.seed == 7


@pytest.mark.parametrize(
    "weights, layers",
    [
        ("1,3", "relu1_1,relu2_1"),
        ("1 3", "relu1_1 relu2_1"),
        ("[1, 3]", '["relu1_1", "relu2_1"]'),
        (" 1 ,\t3 ", "relu1_1, relu2_1,"),
    ],
)
def test_form_lists_in_the_spellings_people_type(weights, layers):
    p = StyleParams.from_mapping({"style_weights": weights, "style_layers": layers})
    assert p.style_weights == (1.0, 3.0) and p.style_layers == ("relu1_1", "relu2_1")


@pytest.mark.parametrize(
    "field, value",
    [
        ("size", "abc"),
        ("size", "-1"),
        ("size", "0"),
        ("size", "15"),
        ("size", "100000"),
        ("size", "12.5"),
        ("size", True),
        ("steps", "0"),
        ("steps", "1.5"),
        ("steps", "nan"),
        ("steps", "1e9"),
        ("steps", ""),
        ("steps", 2.5),
        ("steps", None),
        ("steps", [3]),
        ("content_weight", "-1"),
        ("content_weight", "nan"),
        ("content_weight", "inf"),
        ("content_weight", "x"),
        ("style_weight", "1e12"),
        ("style_weight", float("nan")),
        ("tv_weight", "-0.5"),
        ("lr", "0"),
        ("lr", "5"),
        ("optimizer", "sgd"),
        ("init", "zeros"),
        ("pooling", "min"),
        ("format", "gif"),
        ("preserve_color", "yes"),
        ("seed", "-1"),
        ("seed", str(2**40)),
        ("style_scale", "0.01"),
        ("style_scale", "9"),
        ("quality", "0"),
        ("quality", "101"),
        ("preview_every", "-2"),
        ("style_weights", "1,-1"),
        ("style_weights", "0,0"),
        ("style_weights", "a,b"),
        ("style_weights", "nan"),
        ("content_layers", ""),
        ("content_layers", "conv9_9"),
        ("style_layers", "relu1_1,fc7"),
        ("style_layer_weights", "1,2"),  # five style layers need five weights
    ],
)
def test_every_invalid_value_names_its_field(field, value):
    with pytest.raises(ParamError) as err:
        StyleParams.from_mapping({field: value})
    assert err.value.field == field
    assert field in err.value.message
    assert err.value.code == "invalid_parameter"


def test_range_is_stated_in_the_message():
    with pytest.raises(ParamError, match=r"steps must be an integer in \[1, 10000\], got 0"):
        StyleParams.from_mapping({"steps": "0"})


def test_unknown_parameter_is_an_error():
    with pytest.raises(ParamError, match="unknown parameter 'stpes'") as err:
        StyleParams.from_mapping({"stpes": "10"})
    assert err.value.field == "stpes"


def test_server_limits_lower_the_maximum():
    StyleParams.from_mapping({"size": "256"}, limits={"size": 256})
    with pytest.raises(ParamError, match="at most 256 on this server") as err:
        StyleParams.from_mapping({"size": "257"}, limits={"size": 256})
    assert err.value.code == "limit_exceeded" and err.value.field == "size"


def test_direct_construction_is_validated():
    with pytest.raises(ParamError):
        StyleParams(steps=0)
    with pytest.raises(ParamError):
        StyleParams().replace(optimizer="sgd")


def test_a_preset_fills_what_the_request_leaves_out():
    from nst.params import PRESETS

    fast = StyleParams.from_mapping({"preset": "fast"})
    for name, value in PRESETS["fast"].items():
        assert getattr(fast, name) == value
    assert StyleParams.from_mapping({"preset": "best", "steps": "7"}).steps == 7  # given wins
    # the server's defaults give way to a preset, and its limits cap the preset's values
    capped = StyleParams.from_mapping(
        {"preset": "best"}, defaults={"steps": 20, "size": 64}, limits={"steps": 50}
    )
    assert capped.steps == min(PRESETS["best"]["steps"], 50) and capped.size == 64
    server_preset = StyleParams.from_mapping({}, defaults={"preset": "fast"})
    assert server_preset.steps == PRESETS["fast"]["steps"]


def test_an_unknown_preset_is_named():
    with pytest.raises(ParamError) as caught:
        StyleParams.from_mapping({"preset": "ultra"})
    assert caught.value.field == "preset" and "fast" in str(caught.value)


@pytest.mark.parametrize("kind", ["gram", "MEAN_COV", " sliced_wasserstein "])
def test_style_loss_choices(kind):
    assert StyleParams.from_mapping({"style_loss": kind}).style_loss == kind.strip().lower()
