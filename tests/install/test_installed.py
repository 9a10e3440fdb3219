"""The project installed the way a Python user installs a server: a fresh venv, ``pip install``
of the server and its client (pinned by constraints.txt), then the commands from an empty
folder outside any checkout, with a home of its own (nothing is written into the venv).

Slow (the venv gets its own torch: about two minutes), so ``make test-install`` runs it.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import time
import venv
from pathlib import Path

import pytest
import requests

from tests.live_server import DEV_WEIGHTS, ROOT, free_ports
from tests.nst_server.test_jobs import follow

pytestmark = pytest.mark.install

COMMANDS = (
    "nst",
    "nst-server",
    "nst-build-mar",
    "nst-healthcheck",
    "nst-auth-gate",
    "nst-web",
    "nst-jobs",
    "nst-fetch-weights",
    "nst-client",
)


def run(command: list[str], cwd: Path, env: dict[str, str], timeout: float = 600) -> str:
    done = subprocess.run(
        command, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout
    )
    assert done.returncode == 0, f"{command}: {done.stdout}\n{done.stderr}"
    return done.stdout


def project_version(name: str) -> str:
    text = (ROOT / name).read_text()
    return next(line.split('"')[1] for line in text.splitlines() if line.startswith("version = "))


def snapshot(folder: Path) -> set[str]:
    """Every file under ``folder`` but byte-code caches."""
    return {str(p) for p in folder.rglob("*") if "__pycache__" not in p.parts}


@pytest.fixture(scope="module")
def installed(tmp_path_factory) -> tuple[Path, dict[str, str], Path]:
    """(venv bin folder, the user's environment, an empty working folder)."""
    if not DEV_WEIGHTS.is_file() and not os.environ.get("NST_WEIGHTS"):
        pytest.skip("no VGG19 weights to serve (set NST_WEIGHTS)")
    base = tmp_path_factory.mktemp("user")
    venv.create(base / "venv", with_pip=True)
    bin_dir = base / "venv" / "bin"
    env = {k: v for k, v in os.environ.items() if not k.startswith(("VIRTUAL_ENV", "PYTHON"))}
    env |= {
        "HOME": str(base / "home"),
        "PATH": f"{bin_dir}:{os.environ['PATH']}",
        "TORCH_HOME": str(base / "torch"),
        "NST_WEIGHTS": os.environ.get("NST_WEIGHTS") or str(DEV_WEIGHTS),
    }
    env.pop("NST_HOME", None)
    empty = base / "empty"
    empty.mkdir()
    source = tracked_copy(base / "source")  # pip builds in the source tree: not in ours
    pip = [str(bin_dir / "python"), "-m", "pip", "install", "--quiet"]
    run(
        [*pip, "-c", str(source / "constraints.txt"), str(source), str(source / "client")],
        empty,
        env,
    )
    return bin_dir, env, empty


def tracked_copy(target: Path) -> Path:
    """The checkout's files as git knows them (what a clone or an sdist holds)."""
    listed = run(["git", "ls-files", "-z"], ROOT, dict(os.environ)).split("\0")
    for name in filter(None, listed):
        if (ROOT / name).is_file():
            (target / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(ROOT / name, target / name)
    return target


def test_every_command_says_its_version(installed):
    bin_dir, env, empty = installed
    server, client = project_version("pyproject.toml"), project_version("client/pyproject.toml")
    assert server == client  # released together
    for command in COMMANDS:
        assert run([str(bin_dir / command), "--version"], empty, env).split() == [command, server]


def test_one_owner_per_package_typed_and_licensed(installed):
    bin_dir, env, empty = installed
    python = str(bin_dir / "python")
    owners = run(
        [
            python,
            "-c",
            "import importlib.metadata as m, json;"
            "print(json.dumps({d: m.packages_distributions()[d] for d in "
            "('nst', 'handler', 'nst_server', 'nst_client')}))",
        ],
        empty,
        env,
    )
    assert owners.strip() == (
        '{"nst": ["nst-server"], "handler": ["nst-server"], "nst_server": ["nst-server"], '
        '"nst_client": ["nst-client"]}'
    )
    files = run(
        [
            python,
            "-c",
            "import importlib.metadata as m;"
            "[print(f) for d in ('nst-server', 'nst-client') for f in m.files(d)]",
        ],
        empty,
        env,
    ).split()
    for typed in ("nst/py.typed", "handler/py.typed", "nst_server/py.typed", "nst_client/py.typed"):
        assert typed in files, typed
    assert sum(f.endswith(".dist-info/licenses/LICENSE") for f in files) == 2
    run([python, "-m", "pip", "check"], empty, env)


def test_nst_server_starts_from_an_empty_folder_and_serves(installed):
    """nst-server start builds its archive into the user's state folder (never the venv),
    serves, answers nst-client with a PNG and stops; its ports are moved off the defaults by
    TorchServe's own TS_* variables, so a server already on this machine is left alone."""
    bin_dir, env, empty = installed
    names = ("inference", "management", "metrics", "grpc_inference", "grpc_management")
    ports = dict(zip(names, free_ports(7)))
    histograms, web, jobs = free_ports(3)
    env = env | {
        "TS_INFERENCE_ADDRESS": f"http://127.0.0.1:{ports['inference']}",
        "TS_MANAGEMENT_ADDRESS": f"http://127.0.0.1:{ports['management']}",
        "TS_METRICS_ADDRESS": f"http://127.0.0.1:{ports['metrics']}",
        "TS_GRPC_INFERENCE_PORT": str(ports["grpc_inference"]),
        "TS_GRPC_MANAGEMENT_PORT": str(ports["grpc_management"]),
        "NST_METRICS_ADDRESS": f"127.0.0.1:{histograms}",
        "NST_WEB_ADDRESS": f"127.0.0.1:{web}",
        "NST_JOBS_ADDRESS": f"127.0.0.1:{jobs}",
    }
    site = bin_dir.parent / "lib"
    before = snapshot(site)
    started = time.monotonic()
    out = run([str(bin_dir / "nst-server"), "start"], empty, env)
    print(f"nst-server start (archive built) in {time.monotonic() - started:.1f} s")
    try:
        state = Path(env["HOME"]) / ".local/state/nst-server"
        assert "building the model archive" in out and str(state) in out
        assert (state / "model_store/style_transfer.mar").is_file()
        assert list(empty.iterdir()) == []
        examples = run(
            [str(bin_dir / "python"), "-c", "import nst_server; print(nst_server.RESOURCES)"],
            empty,
            env,
        ).strip()
        run(
            [
                str(bin_dir / "nst-client"),
                f"{examples}/examples/astronaut.jpg",
                f"{examples}/examples/starry_night.jpg",
                "-o",
                str(empty / "out.png"),
                "--url",
                env["TS_INFERENCE_ADDRESS"],
                *("--param", "size=64", "--param", "steps=2"),
            ],
            empty,
            env,
        )
        assert (empty / "out.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
        parameterless_request_finishes_its_steps(env["TS_INFERENCE_ADDRESS"], Path(examples))
        job_through_the_jobs_api(f"http://127.0.0.1:{jobs}", Path(examples), state)
        page = requests.get(f"http://127.0.0.1:{web}/", timeout=10)
        assert page.status_code == 200 and "<html" in page.text.lower()
        assert snapshot(site) == before  # nothing written into the installed packages
        again = run([str(bin_dir / "nst-server"), "start"], empty, env)  # restart: no rebuild
        assert "building the model archive" not in again
    finally:
        stopped = run([str(bin_dir / "nst-server"), "stop"], empty, env)
    assert stopped.startswith("stopped")
    with pytest.raises(requests.ConnectionError):
        requests.get(f"{env['TS_INFERENCE_ADDRESS']}/ping", timeout=5)


def job_through_the_jobs_api(url: str, resources: Path, state: Path) -> None:
    """The installed server's jobs API: a job runs, its image comes back, and its store is in
    the user's state folder."""
    files = {
        "content": (resources / "examples/astronaut.jpg").read_bytes(),
        "style": (resources / "examples/starry_night.jpg").read_bytes(),
    }
    reply = requests.post(f"{url}/v1/jobs", files=files, data={"size": 64, "steps": 2}, timeout=60)
    assert reply.status_code == 202, reply.text
    job = follow(url, reply.json()["id"])
    assert job["status"] == "succeeded", job
    image = requests.get(f"{url}/v1/jobs/{job['id']}/result", timeout=30)
    assert image.content[:8] == b"\x89PNG\r\n\x1a\n"
    assert (state / ".run/jobs.sqlite3").is_file()


def parameterless_request_finishes_its_steps(inference: str, resources: Path) -> None:
    """The shipped CPU defaults: a square photo with no parameters runs all its steps on a
    2-core CPU well within the deadline (about two minutes at most)."""
    photo, style = resources / "examples/astronaut.jpg", resources / "examples/starry_night.jpg"
    started = time.monotonic()
    reply = requests.post(
        f"{inference}/predictions/style_transfer",
        files={"content": photo.read_bytes(), "style": style.read_bytes()},
        timeout=300,
    )
    seconds = time.monotonic() - started
    steps = reply.headers.get("X-NST-Steps")
    print(f"parameterless request on the CPU: {seconds:.1f} s, {steps} steps")
    assert reply.status_code == 200, reply.text
    assert "X-NST-Stopped" not in reply.headers  # every step ran: no deadline, no time limit
    assert int(reply.headers["X-NST-Steps"]) == 200
    assert seconds < 150


def test_removing_the_client_leaves_the_server_whole(installed):
    bin_dir, env, empty = installed
    python = str(bin_dir / "python")
    run([python, "-m", "pip", "uninstall", "--yes", "--quiet", "nst-client"], empty, env)
    run(
        [python, "-c", "import nst, handler.style_transfer_handler, nst_server.control"], empty, env
    )
    run([python, "-m", "pip", "check"], empty, env)
