"""Request parsing and settings, without a server."""

import base64
import io

import pytest
import yaml
from PIL import Image

from handler.metrics import METRICS
from handler.parsing import parse_request
from handler.settings import ServerSettings, SettingsError
from nst.errors import NSTError
from tests.conftest import adobe_rgb_profile

ROOT = __import__("pathlib").Path(__file__).resolve().parents[2]


def png(color=(200, 10, 10), size=(40, 30)) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", size, color).save(buffer, format="PNG")
    return buffer.getvalue()


SETTINGS = ServerSettings(
    max_size=256, max_steps=50, max_styles=2, defaults={"size": 64, "steps": 5}
)


def test_multipart_fields_become_a_job():
    parsed = parse_request(
        {
            "content": bytearray(png()),
            "style": bytearray(png((0, 0, 255))),
            "steps": bytearray(b"7"),
            "stream": bytearray(b"true"),
        },
        {"accept": "application/json"},
        SETTINGS,
    )
    assert parsed.job.params.steps == 7 and parsed.job.params.size == 64  # server default
    assert parsed.stream and parsed.want_json
    assert parsed.job.content.size == (40, 30)


def test_numbered_styles_keep_their_order():
    styles = {"style": png((255, 0, 0)), "style_2": png((0, 255, 0))}
    parsed = parse_request(
        {"content": png(), **{k: v for k, v in reversed(styles.items())}}, {}, SETTINGS
    )
    assert [s.getpixel((0, 0)) for s in parsed.job.styles] == [(255, 0, 0), (0, 255, 0)]


def test_json_body_with_a_style_list():
    body = {
        "content": base64.b64encode(png()).decode(),
        "style": [base64.b64encode(png()).decode()] * 2,
        "params": {"steps": 3, "style_weights": [1, 2]},
    }
    parsed = parse_request({"body": body}, {}, SETTINGS)
    assert len(parsed.job.styles) == 2 and parsed.job.params.style_weights == (1.0, 2.0)
    assert not parsed.want_json


def test_json_nulls_count_as_not_given():
    body = {
        "content": base64.b64encode(png()).decode(),
        "style": base64.b64encode(png()).decode(),
        "init_image": None,
        "mask": None,
        "stream": None,
        "params": {"steps": None, "size": 48, "style_weights": None},
    }
    parsed = parse_request({"body": body}, {}, SETTINGS)
    assert parsed.job.params.steps == 5 and parsed.job.params.size == 48  # server default
    assert parsed.job.mask is None and parsed.job.init_image is None and not parsed.stream
    assert parse_request({"body": {**body, "params": None}}, {}, SETTINGS).job.params.size == 64
    with pytest.raises(NSTError) as err:
        parse_request({"body": {**body, "content": None}}, {}, SETTINGS)
    assert (err.value.field, err.value.code) == ("content", "missing_field")


def test_an_init_image_sent_is_the_start_unless_init_says_otherwise():
    request = {"content": png(), "style": png(), "init_image": png((0, 0, 255))}
    assert parse_request(request, {}, SETTINGS).job.params.init == "image"
    explicit = parse_request({**request, "init": b"noise"}, {}, SETTINGS).job
    assert explicit.params.init == "noise"  # the gate then refuses the unused image


def _encodings_of(data: bytes) -> list[str]:
    """The ways clients spell base64: wrapped lines, URL-safe, unpadded, a data URL."""
    plain = base64.b64encode(data).decode()
    wrapped = "\n".join(plain[i : i + 76] for i in range(0, len(plain), 76)) + "\n"
    return [
        wrapped,
        base64.urlsafe_b64encode(data).decode().rstrip("="),
        f"data:image/png;base64,{plain}",
    ]


def test_json_images_in_every_common_base64_spelling():
    noise = Image.effect_noise((24, 24), 80).convert("RGB")  # bytes that need '+' and '/'
    buffer = io.BytesIO()
    noise.save(buffer, format="PNG")
    data = buffer.getvalue()
    data += b"\0" * (len(data) % 3 == 0)  # a length whose base64 needs padding
    plain = base64.b64encode(data).decode()
    assert "=" in plain and {"+", "/"} <= set(plain)
    for content in _encodings_of(data):
        body = {"content": content, "style": _encodings_of(png())[2]}
        parsed = parse_request({"body": body}, {}, SETTINGS)
        assert parsed.job.content.tobytes() == noise.tobytes()


@pytest.mark.parametrize(
    "request_, field, code",
    [
        ({"body": bytearray()}, "content", "missing_field"),
        ({"body": bytearray(b"garbage")}, "body", "malformed_body"),
        ({"body": {"content": "x", "style": "y", "extra": 1}}, "extra", "invalid_parameter"),
        (
            {"body": {"content": base64.b64encode(png()).decode(), "style": "!!"}},
            "style",
            "invalid_base64",
        ),
        (
            {"content": png(), "style": png(), "style_2": png(), "style_3": png()},
            "style",
            "limit_exceeded",
        ),
        ({"content": png(), "style": png(), "size": b"300"}, "size", "limit_exceeded"),
        ({"content": png(), "style_2": png()}, "style", "missing_field"),
    ],
)
def test_invalid_requests_name_the_field(request_, field, code):
    with pytest.raises(NSTError) as err:
        parse_request(request_, {}, SETTINGS)
    assert (err.value.field, err.value.code) == (field, code)


def test_photos_are_colour_managed_and_masks_keep_their_exact_colours():
    buffer = io.BytesIO()
    photo = Image.new("RGB", (40, 30), (150, 60, 60))
    photo.save(buffer, format="PNG", icc_profile=adobe_rgb_profile())
    tagged = buffer.getvalue()
    request = {"content": tagged, "style": tagged, "mask": tagged}
    job = parse_request(request, {}, SETTINGS).job
    assert job.mask.getpixel((0, 0)) == (150, 60, 60)
    assert job.content.getpixel((0, 0)) != (150, 60, 60) != job.styles[0].getpixel((0, 0))


def test_images_are_decoded_at_the_sizes_the_request_uses():
    buffer = io.BytesIO()
    Image.effect_noise((1600, 1200), 40).convert("RGB").save(buffer, format="JPEG")
    photo = buffer.getvalue()
    job = parse_request(
        {"content": photo, "style": photo, "style_2": photo, "size": b"100", "style_scale": b"2"},
        {},
        SETTINGS,
    ).job
    assert job.content.size == (200, 150)  # 1/8: both sides still >= 100
    assert [s.size for s in job.styles] == [(400, 300)] * 2  # 1/4: >= 200 for style_scale 2


def test_settings_from_model_config():
    config = yaml.safe_load((ROOT / "nst_server/resources/model-config.yaml").read_text())
    settings = ServerSettings.from_model_config(config)
    assert settings.response_timeout_s == config["responseTimeout"]
    assert settings.deadline_budget_s() == config["responseTimeout"] - settings.deadline_margin_s
    assert (
        settings.for_device("cuda").base_params().size == config["handler"]["gpu_defaults"]["size"]
    )


def test_settings_give_each_device_its_defaults():
    config = yaml.safe_load((ROOT / "nst_server/resources/model-config.yaml").read_text())
    settings = ServerSettings.from_model_config(config)
    cpu, gpu = settings.for_device("cpu"), settings.for_device("cuda")
    assert (cpu.base_params().size, cpu.base_params().steps) == (256, 200)
    assert (gpu.base_params().size, gpu.base_params().steps) == (512, 300)
    assert cpu.describe()["parameters"]["size"]["default"] == 256
    operator = {**config, "handler": {**config["handler"], "defaults": {"steps": 20}}}
    for device in ("cpu", "cuda"):  # an override's `defaults` apply on every device
        assert (
            ServerSettings.from_model_config(operator).for_device(device).base_params().steps == 20
        )


@pytest.mark.parametrize(
    ("block", "message"),
    [
        ({"max_size": "1024"}, "handler.max_size must be an integer"),
        ({"max_steps": 10.0}, "handler.max_steps must be an integer"),
        ({"max_styles": 9}, "handler.max_styles must be an integer in [1, 8]"),
        ({"deadline_margin_s": True}, "handler.deadline_margin_s must be a number"),
        ({"precision": "FP16"}, "handler.precision must be one of auto, fp32, bf16"),
        ({"compile_mode": "max-autotune"}, "handler.compile_mode must be one of default, reduce"),
        ({"batch_invariant": "auto"}, "handler.batch_invariant must be true, false or null"),
        ({"preview_max_side": -256}, "handler.preview_max_side must be an integer"),
        ({"gpu_defaults": {"size": 2048}}, "handler.gpu_defaults: size must be at most 1024"),
        ({"defaults": "size=64"}, "handler.defaults must be a mapping"),
        ({"deadline_margin_s": 45}, "must be below responseTimeout (45)"),
    ],
)
def test_settings_refuse_a_bad_block_naming_the_key(block, message):
    with pytest.raises(SettingsError) as caught:
        ServerSettings.from_model_config({"responseTimeout": 45, "handler": block})
    assert message in str(caught.value) and "\n" not in str(caught.value)


def test_settings_refuse_a_bad_response_timeout():
    with pytest.raises(SettingsError, match="responseTimeout must be a positive number"):
        ServerSettings.from_model_config({"responseTimeout": "300"})


def test_settings_reject_unknown_keys_and_bad_defaults():
    with pytest.raises(ValueError, match="unknown keys"):
        ServerSettings.from_model_config({"handler": {"max_sise": 3}})
    with pytest.raises(ValueError, match=r"handler\.defaults"):
        ServerSettings.from_model_config({"handler": {"max_steps": 10, "defaults": {"steps": 20}}})


def test_every_handler_metric_is_declared_in_metrics_yaml():
    declared = yaml.safe_load((ROOT / "nst_server/resources/metrics.yaml").read_text())[
        "model_metrics"
    ]
    for name, (kind, unit, label) in METRICS.items():
        entry = next((m for m in declared.get(kind, []) if m["name"] == name), None)
        assert entry is not None, name
        assert entry["unit"] == unit
        assert entry["dimensions"] == ([label] if label else []) + ["ModelName", "Level"]


@pytest.mark.parametrize(
    "names, field",
    [(["style", "style_1"], "style_1"), (["style", "style_3"], "style_3")],
)
def test_style_numbering_has_one_first_style_and_no_gaps(names, field):
    request = {"content": png(), **{name: png() for name in names}}
    with pytest.raises(NSTError) as error:
        parse_request(request, {}, SETTINGS)
    assert error.value.field == field and "without gaps" in error.value.message


def test_the_sagemaker_routing_input_is_not_a_parameter():
    request = {"content": png(), "style": png(), "model_name": b"style_transfer"}
    assert parse_request(request, {}, SETTINGS).job.params.size == 64
    body = {
        "body": {
            "content": base64.b64encode(png()).decode(),
            "style": base64.b64encode(png()).decode(),
        }
    }
    assert parse_request({**body, "model_name": b"style_transfer"}, {}, SETTINGS).job


@pytest.mark.parametrize("name", ["content", "style", "style_2", "mask", "stream"])
def test_images_and_flags_inside_params_are_refused(name):
    image = base64.b64encode(png()).decode()
    body = {"content": image, "style": image, "params": {name: image}}
    with pytest.raises(NSTError) as error:
        parse_request({"body": body}, {}, SETTINGS)
    assert error.value.field == name and "top level" in error.value.message


@pytest.mark.parametrize("where", ["form", "json key", "json param"])
def test_a_long_name_is_echoed_only_as_a_short_prefix(where):
    name = "x" * 100_000
    image = base64.b64encode(png()).decode()
    if where == "form":
        request = {"content": png(), "style": png(), name: b"1"}
    elif where == "json key":
        request = {"body": {"content": image, "style": image, name: 1}}
    else:
        request = {"body": {"content": image, "style": image, "params": {name: 1}}}
    with pytest.raises(NSTError) as error:
        parse_request(request, {}, SETTINGS)
    assert len(error.value.field) <= 40 and error.value.field.startswith("xxx")
    assert error.value.message.count("x") < 100 and len(error.value.message) <= 1000


def test_a_json_object_sent_as_bytes_is_json():
    """gRPC's ``body`` input, or HTTP JSON without its content type."""
    image = base64.b64encode(png()).decode()
    raw = f'  {{"content": "{image}", "style": "{image}", "params": {{"steps": 3}}}}'.encode()
    assert parse_request({"body": bytearray(raw)}, {}, SETTINGS).job.params.steps == 3
    with pytest.raises(NSTError) as error:
        parse_request({"body": bytearray(b"{not json")}, {}, SETTINGS)
    assert error.value.code == "malformed_body"
