"""nst_client against the real test server: images in every form, streams, typed errors."""

from __future__ import annotations

import io
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from nst_client import (
    Client,
    ConnectionFailed,
    InvalidRequest,
    Progress,
    Result,
    ServerBusy,
    TooLarge,
    Unauthorized,
)
from nst_client.errors import from_body
from PIL import Image

from tests.conftest import CONTENT, STYLE

ROOT = Path(__file__).resolve().parents[2]


def test_importing_the_client_never_imports_torch_or_the_engine():
    code = (
        "import sys, nst_client, nst_client.cli, nst_client.folder, nst_client.video\n"
        "heavy = {'torch', 'nst', 'handler', 'numpy'} & set(sys.modules)\n"
        "print(sorted(heavy))"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout.strip() == "[]"


def test_the_client_package_alone_needs_only_requests_pillow_and_tqdm(tmp_path):
    source = tmp_path / "client"  # a copy: building writes build/ and egg-info beside it
    shutil.copytree(ROOT / "client", source, ignore=shutil.ignore_patterns("build", "*.egg-info"))
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "--quiet",
            "--no-deps",
            "--no-build-isolation",
            "--wheel-dir",
            str(tmp_path / "wheels"),
            str(source),
        ],
        check=True,
        capture_output=True,
    )
    (wheel,) = (tmp_path / "wheels").glob("nst_client-*.whl")
    import zipfile

    with zipfile.ZipFile(wheel) as archive:
        names = archive.namelist()
        metadata = archive.read(next(n for n in names if n.endswith("METADATA"))).decode()
    assert {n.split("/")[0] for n in names if not n.startswith("nst_client-")} == {"nst_client"}
    requires = sorted(
        line.split(":", 1)[1].split(">")[0].split(";")[0].strip()
        for line in metadata.splitlines()
        if line.startswith("Requires-Dist:") and "extra ==" not in line
    )
    assert requires == ["pillow", "requests", "tqdm"]


def test_stylize_takes_paths_bytes_and_pil_images(server):
    client = Client(server.inference)
    by_path = client.stylize(CONTENT / "chelsea.png", STYLE / "the_scream.jpg", size=48, steps=2)
    assert isinstance(by_path, Image.Image) and by_path.size == (48, 32)
    content = Image.open(CONTENT / "chelsea.png")
    by_image = client.stylize(
        content,
        (STYLE / "the_scream.jpg").read_bytes(),
        STYLE / "shipwreck.jpg",
        size=40,
        steps=2,
        style_weights=(2, 1),
        preserve_color="luminance",
    )
    assert by_image.size == (40, 27)


def test_pil_images_of_every_common_mode_are_sent(server):
    from nst_client.client import image_file

    from nst.imageio import decode_image

    photo = Image.open(CONTENT / "chelsea.png").convert("RGB")
    grey = photo.convert("L")
    modes = {
        "CMYK": photo.convert("CMYK"),
        "YCbCr": photo.convert("YCbCr"),
        "F": Image.fromarray(np.asarray(grey, dtype="float32") / 255),
        "PA": photo.convert("P").convert("PA"),
    }
    expected = {"CMYK": photo, "YCbCr": photo, "F": grey, "PA": modes["PA"].convert("RGB")}
    for mode, image in modes.items():
        decoded = decode_image(image_file(image, "content")[1])  # as the server reads it
        assert decoded.size == photo.size, mode
        seen, wanted = (
            decoded.getpixel((200, 150)),
            expected[mode].convert("RGB").getpixel((200, 150)),
        )
        assert sum(abs(a - b) for a, b in zip(seen, wanted)) < 12, (mode, seen, wanted)
    client = Client(server.inference)
    result = client.stylize(modes["CMYK"], modes["F"], size=40, steps=1)
    assert result.size == (40, 27)


def test_masks_and_the_new_parameters_go_through_the_client(server):
    mask = Image.new("RGB", (120, 80), (0, 0, 0))
    mask.paste((255, 255, 255), (60, 0, 120, 80))
    image = Client(server.inference).stylize(
        CONTENT / "chelsea.png",
        STYLE / "the_scream.jpg",
        mask=mask,
        size=48,
        steps=2,
        style_loss="mean_cov",
        preset="fast",
        preserve_color="original_colors",
    )
    assert image.size == (48, 32)
    with pytest.raises(InvalidRequest) as error:
        Client(server.inference).stylize(
            CONTENT / "chelsea.png", STYLE / "the_scream.jpg", mask=mask.resize((50, 50)), size=32
        )
    assert error.value.field == "mask"


def test_run_returns_the_figures_and_the_encoded_bytes(server):
    result = Client(server.predict_url).run(
        CONTENT / "chelsea.png", STYLE / "the_scream.jpg", size=32, steps=3, format="jpeg"
    )
    assert result.steps_run == 3 and result.stopped is None and result.seconds > 0
    assert result.data[:3] == b"\xff\xd8\xff"  # JPEG as the server sent it
    assert Image.open(io.BytesIO(result.data)).size == result.image.size == (32, 21)
    assert result.losses["total"] < result.initial_losses["total"]


def test_stream_yields_progress_with_previews_then_the_result(server):
    events = list(
        Client(server.inference).stream(
            CONTENT / "chelsea.png", STYLE / "the_scream.jpg", size=64, steps=40, preview_every=5
        )
    )
    progress = [e for e in events if isinstance(e, Progress)]
    assert progress and all(p.steps == 40 for p in progress)
    assert [p.step for p in progress] == sorted(p.step for p in progress)
    assert any(p.preview is not None for p in progress)
    assert isinstance(events[-1], Result) and events[-1].image.size == (64, 43)


def test_errors_are_typed_and_carry_the_code_and_field(server):
    client = Client(server.inference)
    with pytest.raises(InvalidRequest) as error:
        client.stylize(b"not an image", STYLE / "the_scream.jpg", size=32)
    assert (error.value.status, error.value.code, error.value.field) == (
        400,
        "not_an_image",
        "content",
    )
    with pytest.raises(InvalidRequest) as error:
        client.stylize(CONTENT / "chelsea.png", STYLE / "the_scream.jpg", size=99999)
    assert (error.value.code, error.value.field) == ("invalid_parameter", "size")
    with pytest.raises(InvalidRequest) as error:
        client.stylize(CONTENT / "chelsea.png", STYLE / "the_scream.jpg", colour="red")
    assert error.value.field == "colour"


def test_torchserves_own_error_bodies_map_to_the_same_types():
    busy = from_body(503, {"code": 503, "type": "ServiceUnavailableException", "message": "full"})
    assert isinstance(busy, ServerBusy) and busy.code == "ServiceUnavailableException"
    big = from_body(413, {"code": 413, "type": "RequestEntityTooLarge", "message": "too big"})
    assert isinstance(big, TooLarge) and big.field is None
    assert isinstance(from_body(401, "<html>"), Unauthorized)


def test_an_unreachable_server_is_a_connection_error():
    import socket

    with socket.socket() as s:  # a loopback port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    with pytest.raises(ConnectionFailed, match="cannot reach"):
        Client(f"http://127.0.0.1:{port}").stylize(b"x", b"y")
