"""nst-client: one image, a folder, a clip; the key from the environment; retries of 503."""

from __future__ import annotations

import base64
import io
import json
import shutil
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from nst_client import Client, ServerBusy
from nst_client.cli import main
from PIL import Image

from tests.conftest import CONTENT, STYLE
from tests.live_server import free_ports


def png(size=(8, 8)) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", size, (200, 40, 40)).save(buffer, format="PNG")
    return buffer.getvalue()


class BusyServer(ThreadingHTTPServer):
    """A loopback HTTP server that answers 503 to its first ``busy`` requests, then a JSON
    result after ``delay`` seconds; it records headers and the most requests at once."""

    def __init__(self, busy: int = 0, delay: float = 0.0):
        super().__init__(("127.0.0.1", 0), BusyHandler)
        self.busy, self.delay, self.lock = busy, delay, threading.Lock()
        self.seen: list[dict[str, str]] = []
        self.running = self.most_running = 0
        self.retry_after = "0"

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_port}"


class BusyHandler(BaseHTTPRequestHandler):
    server: BusyServer

    def do_POST(self) -> None:
        self.rfile.read(int(self.headers["Content-Length"]))
        s = self.server
        with s.lock:
            s.seen.append(dict(self.headers))
            busy = len(s.seen) <= s.busy
            s.running += 1
            s.most_running = max(s.most_running, s.running)
        time.sleep(s.delay)
        if busy:
            body = {"code": 503, "type": "ServiceUnavailableException", "message": "queue full"}
            self.reply(503, body, {"Retry-After": s.retry_after})
        else:
            image = base64.b64encode(png()).decode()
            self.reply(200, {"image": image, "steps_run": 1, "seconds": 0.1, "stopped": None})
        with s.lock:
            s.running -= 1

    def reply(self, status: int, body: dict, headers: dict | None = None) -> None:
        data = json.dumps(body).encode()
        self.send_response(status)
        for name, value in {"Content-Type": "application/json", **(headers or {})}.items():
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, *args) -> None:
        pass


@pytest.fixture
def busy_server(request):
    server = BusyServer(*getattr(request, "param", (0, 0.0)))
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield server
    server.shutdown()


@pytest.mark.parametrize("busy_server", [(2, 0.0)], indirect=True)
def test_503_is_retried_with_back_off_then_served(busy_server):
    image = Client(busy_server.url, backoff=0.01).stylize(png(), png())
    assert image.size == (8, 8) and len(busy_server.seen) == 3


@pytest.mark.parametrize("busy_server", [(10, 0.0)], indirect=True)
def test_a_server_still_busy_after_the_retries_is_a_typed_error(busy_server):
    with pytest.raises(ServerBusy) as error:
        Client(busy_server.url, retries=2, backoff=0.01).stylize(png(), png())
    assert error.value.status == 503 and len(busy_server.seen) == 3


@pytest.mark.parametrize("busy_server", [(1, 0.0)], indirect=True)
def test_a_huge_retry_after_is_obeyed_only_up_to_a_cap(busy_server, monkeypatch):
    import nst_client.client

    monkeypatch.setattr(nst_client.client, "MAX_RETRY_AFTER_S", 0.3)
    busy_server.retry_after = "86400"  # a day
    started = time.monotonic()
    image = Client(busy_server.url, backoff=0.01).stylize(png(), png())
    assert image.size == (8, 8) and len(busy_server.seen) == 2
    assert time.monotonic() - started < 10


def test_the_command_reads_the_key_from_the_environment(busy_server, tmp_path, monkeypatch):
    monkeypatch.setenv("NST_API_KEY", "secret-key")
    (tmp_path / "c.png").write_bytes(png())
    out = tmp_path / "out.png"
    assert (
        main(
            [
                str(tmp_path / "c.png"),
                str(tmp_path / "c.png"),
                "-o",
                str(out),
                "--url",
                busy_server.url,
            ]
        )
        == 0
    )
    assert busy_server.seen[0]["Authorization"] == "Bearer secret-key"
    assert out.read_bytes() == png()


@pytest.mark.parametrize("busy_server", [(0, 0.3)], indirect=True)
def test_a_folder_keeps_at_most_in_flight_requests_running(busy_server, tmp_path):
    source = tmp_path / "in"
    source.mkdir()
    for i in range(7):
        (source / f"{i}.png").write_bytes(png())
    args = [
        str(source),
        str(source / "0.png"),
        "-o",
        str(tmp_path / "out"),
        "--url",
        busy_server.url,
    ]
    assert main([*args, "--in-flight", "3"]) == 0
    assert busy_server.most_running == 3 and len(busy_server.seen) == 7


@pytest.mark.parametrize("busy_server", [(0, 0.0)], indirect=True)
def test_a_folder_says_how_many_it_sends_when_it_cannot_ask_the_server(
    busy_server, tmp_path, capsys
):
    """No management API to read the batch size from: the default, said on stderr, never a
    silent guess at another port of the same host."""
    source = tmp_path / "in"
    source.mkdir()
    (source / "a.png").write_bytes(png())
    args = [str(source), str(source / "a.png"), "-o", str(tmp_path / "out"), "--url"]
    assert main([*args, busy_server.url]) == 0
    assert "no --management-url" in capsys.readouterr().err
    (port,) = free_ports(1)
    nowhere = f"http://127.0.0.1:{port}"
    assert main([*args, busy_server.url, "--management-url", nowhere]) == 0
    err = capsys.readouterr().err
    assert f"could not read {nowhere}/models/" in err and "--in-flight" in err


@pytest.mark.parametrize("busy_server", [(0, 0.0)], indirect=True)
def test_a_folder_tree_is_mirrored_without_overwriting_or_reprocessing(busy_server, tmp_path):
    source = tmp_path / "photos"
    for name in ("a.jpg", "a.png", "b.png", "trip/c.png", "trip/day 2/d.webp", ".hidden.png"):
        (source / name).parent.mkdir(parents=True, exist_ok=True)
        (source / name).write_bytes(png())
    out = source / "stylised"  # inside the input folder: never read back as input
    args = [str(source), str(source / "b.png"), "-o", str(out), "--url", busy_server.url]
    assert main([*args, "--in-flight", "2"]) == 0
    written = sorted(str(p.relative_to(out)) for p in out.rglob("*") if p.is_file())
    assert written == ["a.jpg.png", "a.png.png", "b.png", "trip/c.png", "trip/day 2/d.png"]
    assert len(busy_server.seen) == 5
    assert main([*args, "--in-flight", "2"]) == 0  # all done: nothing sent again
    assert len(busy_server.seen) == 5


def test_errors_are_one_line_not_a_traceback(server, tmp_path, capsys):
    out = tmp_path / "x.png"
    code = main(
        [
            str(CONTENT / "chelsea.png"),
            str(STYLE / "the_scream.jpg"),
            "-o",
            str(out),
            "--url",
            server.inference,
            "--param",
            "size=99999",
        ]
    )
    err = capsys.readouterr().err
    assert code == 1 and not out.exists()
    assert err.count("\n") == 1 and "invalid_parameter" in err and "(field size)" in err
    assert main([str(tmp_path / "missing.png"), str(STYLE / "the_scream.jpg"), "-o", str(out)]) == 1
    assert "missing.png" in capsys.readouterr().err


def test_a_folder_is_resumable_and_a_bad_file_does_not_stop_it(server, tmp_path, capsys):
    source = tmp_path / "photos"
    source.mkdir()
    for name in ("chelsea.png", "coffee.png", "rocket.jpg"):
        shutil.copy(CONTENT / name, source / name)
    (source / "broken.png").write_bytes(b"not an image")
    (source / "notes.txt").write_text("not an image either, and not an image name")
    out = tmp_path / "stylised"
    args = [str(source), str(STYLE / "the_scream.jpg"), "-o", str(out), "--url", server.inference]
    args += ["--param", "size=40", "--param", "steps=2", "--management-url", server.management]

    assert main(args) == 1  # broken.png failed; the others were written
    first = capsys.readouterr()
    assert sorted(p.name for p in out.iterdir()) == ["chelsea.png", "coffee.png", "rocket.png"]
    assert "broken.png" in first.err and "not_an_image" in first.err
    assert "wrote 3 images" in first.out and "1 failed" in first.out
    assert "4 requests in flight" in first.out  # the test server's batchSize x 1 worker
    assert all(max(Image.open(p).size) == 40 for p in out.iterdir())

    (out / "coffee.png").unlink()  # as if interrupted before this one
    before = {p.name: p.stat().st_mtime_ns for p in out.iterdir()}
    main(args)
    second = capsys.readouterr().out
    assert "wrote 1 images" in second and "2 already done" in second
    assert {p.name: p.stat().st_mtime_ns for p in out.iterdir() if p.name in before} == before
    assert (out / "coffee.png").exists() and not list(out.glob(".*.part"))


def test_a_clip_keeps_its_frames_and_frame_rate(server, tmp_path, capsys):
    imageio_ffmpeg = pytest.importorskip("imageio_ffmpeg")
    clip = tmp_path / "pan.mp4"
    photo = Image.open(CONTENT / "chelsea.png").convert("RGB").resize((120, 80))
    writer = imageio_ffmpeg.write_frames(str(clip), (64, 48), fps=8, macro_block_size=2)
    writer.send(None)
    for i in range(6):  # a slow pan across the photo
        writer.send(photo.crop((i * 4, 10, i * 4 + 64, 58)).tobytes())
    writer.close()

    out = tmp_path / "styled.mp4"
    args = [str(clip), str(STYLE / "the_scream.jpg"), "-o", str(out), "--url", server.inference]
    assert main([*args, "--param", "size=48", "--param", "steps=4", "--frame-steps", "2"]) == 0
    assert "6 frames at 8 fps" in capsys.readouterr().out
    reader = imageio_ffmpeg.read_frames(str(out))
    meta = next(reader)
    frames = list(reader)
    assert meta["fps"] == 8 and meta["size"] == (48, 36) and len(frames) == 6
