"""Start, wait for and stop a TorchServe serving ``style_transfer``.

    nst-server start [--config config.properties] [--run-dir DIR] [--model-store DIR]
    nst-server stop  [--run-dir DIR]

(``python scripts/server.py`` takes the same options.) By default everything it makes (the
model archive, the run folder, the logs) goes to :func:`nst_server.server_home`: the checkout
when run from one, else ``$NST_HOME`` or ``~/.local/state/nst-server``. ``start`` builds the
model archive there first when it is missing, was built by other code, or does not pack the
``--model-config`` or ``--weights`` given (an archive built with ``nst-build-mar --override``
is kept).
Each server gets its own run directory: TorchServe's pid file, worker sockets and unpacked
models live in ``$TMPDIR``, which is set to ``RUN_DIR/tmp`` for both start and stop, so
this never touches another server on the machine. ``start`` returns once the model's worker
is READY (``/ping`` says Healthy before that), printing an example request. Addresses come
from the config file, overridden by ``TS_INFERENCE_ADDRESS`` / ``TS_MANAGEMENT_ADDRESS`` /
``TS_METRICS_ADDRESS`` (``enable_envvars_config=true``).
"""

from __future__ import annotations

import argparse
import contextlib
import os
import shutil
import signal
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable
from pathlib import Path

from handler import MODEL_NAME
from handler.activity import STATE_DIR_ENV
from handler.histograms import (
    ADDRESS_ENV,
    DEFAULT_ADDRESS,
    JOBS_UPSTREAM_ENV,
    MULTIPROC_ENV,
    UPSTREAM_ENV,
)
from handler.settings import SettingsError
from nst.errors import WeightsError

from . import RESOURCES, add_version, jobs, server_home
from . import mar as archive
from . import web as page
from .healthcheck import is_ready

VENV_BIN = Path(sys.executable).parent


def read_properties(path: Path) -> dict[str, str]:
    """``key=value`` lines of a Java properties file, with ``TS_*`` env overrides."""
    props = {}
    for line in path.read_text().splitlines():
        line = line.strip()
        if line and not line.startswith("#") and "=" in line:
            key, value = line.split("=", 1)
            props[key.strip()] = value.strip()
    for key in ("inference_address", "management_address", "metrics_address"):
        props[key] = os.environ.get(f"TS_{key.upper()}", props.get(key, ""))
    return props


HISTOGRAMS_DIR = "prometheus"  # in the run folder: the workers' shared histogram files
STATE_DIR = "state"  # in the run folder: the workers' busy and cancel markers
JOBS_STORE = "jobs.sqlite3"  # in the run folder: the jobs API's store


def server_env(run_dir: Path, log_dir: Path, extra: dict[str, str] | None = None) -> dict[str, str]:
    """Environment isolating this server's pid file, sockets, logs and the workers' shared
    histogram files (:func:`start` empties their folder), plus ``extra``."""
    tmp = run_dir / "tmp"
    tmp.mkdir(parents=True, exist_ok=True)
    (run_dir / STATE_DIR).mkdir(exist_ok=True)
    log_dir.mkdir(parents=True, exist_ok=True)
    return {
        **os.environ,
        "TMPDIR": str(tmp),
        "TEMP": str(tmp),
        "LOG_LOCATION": str(log_dir),
        "METRICS_LOCATION": str(log_dir),
        MULTIPROC_ENV: str(run_dir / HISTOGRAMS_DIR),
        STATE_DIR_ENV: str(run_dir / STATE_DIR),
        "PATH": f"{VENV_BIN}:{os.environ['PATH']}",
        **(extra or {}),
    }


def start(
    config: Path,
    run_dir: Path,
    log_dir: Path,
    model_store: Path,
    timeout: float = 180.0,
    extra_env: dict[str, str] | None = None,
) -> dict[str, str]:
    """Start TorchServe in the background and wait for a READY worker."""
    if shutil.which("java") is None:
        raise SystemExit(
            "TorchServe needs Java 17 or newer on PATH (Debian/Ubuntu: "
            "apt-get install openjdk-17-jre-headless; macOS: brew install openjdk@17)"
        )
    web = (extra_env or {}).get(
        page.ADDRESS_ENV, os.environ.get(page.ADDRESS_ENV, page.DEFAULT_ADDRESS)
    )
    jobs_address = (extra_env or {}).get(
        jobs.ADDRESS_ENV, os.environ.get(jobs.ADDRESS_ENV, jobs.DEFAULT_ADDRESS)
    )
    props = read_properties(config)
    metrics = local_url(props.get("metrics_address", ""))
    upstream = {
        UPSTREAM_ENV: f"{metrics}/metrics" if metrics else "",
        JOBS_UPSTREAM_ENV: f"http://{jobs_address}/metrics" if jobs_address else "",
    }
    env = server_env(run_dir, log_dir, {**upstream, **cors_env(web), **(extra_env or {})})
    histograms = run_dir / HISTOGRAMS_DIR  # a new server's histograms start from zero
    shutil.rmtree(histograms, ignore_errors=True)
    histograms.mkdir()
    # The Java daemon inherits the launcher's output: send it to a file, not to our caller's
    # pipe (which would then stay open as long as the server runs).
    with (log_dir / "torchserve_console.log").open("ab") as console:
        subprocess.run(
            [
                str(VENV_BIN / "torchserve"),
                "--start",
                "--ncs",
                "--ts-config",
                str(config),
                "--model-store",
                str(model_store),
                "--models",
                f"{MODEL_NAME}={MODEL_NAME}.mar",
            ],
            check=True,
            env=env,
            cwd=config.parent,
            stdout=console,
            stderr=console,
            stdin=subprocess.DEVNULL,
        )
    if jobs_address:
        inference = local_url(props["inference_address"])
        props["jobs_address"] = start_jobs(
            jobs_address,
            inference,
            web,
            env,
            model_store=model_store,
            run_dir=run_dir,
            log_dir=log_dir,
        )
    if web:
        if props.get("enable_envvars_config") != "true":
            print(
                f"note: {config.name} lacks enable_envvars_config=true, so TorchServe ignores "
                "the try-it page's CORS origin and the page cannot call the API",
                file=sys.stderr,
            )
        jobs_url = f"http://{jobs_address}" if jobs_address else ""
        props["web_address"] = start_page(
            web,
            props["inference_address"],
            jobs_url,
            model_store=model_store,
            run_dir=run_dir,
            log_dir=log_dir,
        )
    wait_ready(props["management_address"], timeout, log_dir)
    if props.get("jobs_address"):
        wait_answering(f"http://{jobs_address}/ping", timeout, log_dir / "jobs.log")
    return props


def wait_answering(url: str, timeout: float, log: Path) -> None:
    """Poll ``url`` until it answers 200 (a service started beside TorchServe)."""

    def answers() -> bool:
        with contextlib.suppress(OSError), urllib.request.urlopen(url, timeout=5) as reply:
            return reply.status == 200
        return False

    wait_for(answers, f"{url} not answering", timeout, log, every_s=0.5)


def wait_for(
    check: Callable[[], bool], what: str, timeout: float, log: Path, every_s: float
) -> None:
    """Poll ``check`` every ``every_s`` until it holds; after ``timeout``, exit saying
    ``what`` with the tail of ``log``."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return
        time.sleep(every_s)
    tail = log.read_text()[-3000:] if log.exists() else f"(no {log.name})"
    raise SystemExit(f"{what} after {timeout:.0f} s; {log.name} tail:\n{tail}")


def local_url(address: str) -> str:
    """An address TorchServe listens on, as this machine reaches it (0.0.0.0: loopback)."""
    return address.replace("://0.0.0.0", "://127.0.0.1").rstrip("/")


def cors_env(web: str) -> dict[str, str]:
    """TorchServe's CORS for exactly the try-it page's origin (none without a page)."""
    if not web:
        return {}
    return {
        "TS_CORS_ALLOWED_ORIGIN": page.origin(web),
        "TS_CORS_ALLOWED_METHODS": "GET, POST, OPTIONS",
        "TS_CORS_ALLOWED_HEADERS": "Content-Type, Accept, Authorization, X-Request-Id",
    }


def start_background(
    name: str,
    module: str,
    options: list[str],
    run_dir: Path,
    log_dir: Path,
    env: dict[str, str] | None = None,
) -> None:
    """Run ``python -m module options`` in the background, in ``env`` (pid in
    ``run_dir/NAME.pid``, output in ``log_dir/NAME.log``)."""
    with (log_dir / f"{name}.log").open("ab") as log:
        process = subprocess.Popen(
            [sys.executable, "-m", module, *options],
            stdout=log,
            stderr=log,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
            env=env,
        )
    (run_dir / f"{name}.pid").write_text(str(process.pid))


def stop_background(name: str, module: str, run_dir: Path) -> None:
    """Stop what :func:`start_background` started as ``name`` from ``run_dir``, if running."""
    pid_file = run_dir / f"{name}.pid"
    if not pid_file.exists():
        return
    pid = int(pid_file.read_text().strip() or 0)
    pid_file.unlink()
    cmdline = Path(f"/proc/{pid}/cmdline")
    if pid and cmdline.exists() and module.encode() in cmdline.read_bytes():
        os.kill(pid, signal.SIGTERM)


def start_page(
    address: str, inference: str, jobs: str, *, model_store: Path, run_dir: Path, log_dir: Path
) -> str:
    """Run the try-it page in the background (``jobs``: the jobs API it submits to; as many
    style slots as the served archive takes); its URL."""
    served = archive.served_settings(model_store / f"{MODEL_NAME}.mar")
    options = ["--address", address, "--inference", inference, "--jobs", jobs]
    options += ["--max-styles", str(served.max_styles)]
    start_background("web", "nst_server.web", options, run_dir, log_dir)
    return page.origin(address) + "/"


def start_jobs(
    address: str,
    inference: str,
    web: str,
    env: dict[str, str],
    *,
    model_store: Path,
    run_dir: Path,
    log_dir: Path,
) -> str:
    """Run the jobs API in the background in the server's ``env`` (its keys, its state
    folder for cancel markers), checking submits against the served archive's settings, its
    store in ``run_dir``; its URL."""
    options = [
        "--model-config",
        str(model_store / f"{MODEL_NAME}.mar"),
        "--address",
        address,
        "--inference",
        inference,
        "--store",
        str(run_dir / JOBS_STORE),
        "--state-dir",
        env[STATE_DIR_ENV],
    ]
    if web:
        options += ["--cors-origin", page.origin(web)]
    # Its series are its own (served on its /metrics), not the workers' shared histograms.
    own = {k: v for k, v in env.items() if k != MULTIPROC_ENV}
    start_background("jobs", "nst_server.jobs", options, run_dir, log_dir, own)
    return f"http://{address}/v1/jobs"


def wait_ready(management: str, timeout: float, log_dir: Path) -> None:
    """Poll the management API until the model has a READY worker (the container probe's
    check)."""
    wait_for(
        lambda: is_ready(management, None, 5.0),
        f"{MODEL_NAME} not READY",
        timeout,
        log_dir / "model_log.log",
        every_s=0.25,
    )


def stop(run_dir: Path, timeout: float = 30.0) -> bool:
    """Stop the server whose pid file is in ``run_dir``; wait until its process is gone."""
    stop_background("web", "nst_server.web", run_dir)
    stop_background("jobs", "nst_server.jobs", run_dir)
    pid_file = run_dir / "tmp" / ".model_server.pid"
    if not pid_file.exists():
        return False
    pid = int(pid_file.read_text().strip() or 0)
    subprocess.run(
        [str(VENV_BIN / "torchserve"), "--stop"],
        env=server_env(run_dir, run_dir),
        check=False,
        stdout=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + timeout
    while pid and time.monotonic() < deadline and Path(f"/proc/{pid}").exists():
        time.sleep(0.2)
    return True


def example(props: dict[str, str]) -> str:
    """A request that works against the started server."""
    images = RESOURCES / "examples"
    return (
        f"curl -s {props['inference_address']}/predictions/{MODEL_NAME} "
        f"-F content=@{images}/astronaut.jpg "
        f"-F style=@{images}/starry_night.jpg -F size=128 -F steps=30 -o out.png"
    )


def parser() -> argparse.ArgumentParser:
    home = server_home()
    parser = argparse.ArgumentParser(
        description=__doc__.splitlines()[0], formatter_class=argparse.ArgumentDefaultsHelpFormatter
    )
    add_version(parser)
    parser.add_argument("action", choices=("start", "stop"), help="start or stop the server")
    parser.add_argument(
        "--config",
        type=Path,
        default=RESOURCES / "config.properties",
        help="TorchServe's settings (addresses, sizes, metrics)",
    )
    parser.add_argument(
        "--run-dir", type=Path, default=home / ".run", help="pid file, sockets, unpacked models"
    )
    parser.add_argument("--log-dir", type=Path, default=home / "logs", help="TorchServe's logs")
    parser.add_argument(
        "--model-store",
        type=Path,
        default=archive.default_store(),
        help="where the model archive is (built there when missing or out of date)",
    )
    parser.add_argument(
        "--model-config",
        type=Path,
        help=f"the model's settings the archive must pack (when none is given: an archive "
        f"already in --model-store is kept, a new one packs {archive.DEFAULT_CONFIG})",
    )
    parser.add_argument(
        "--weights",
        type=Path,
        help="VGG19 weights the archive must pack (when none is given: those of an archive "
        "already there, else $NST_WEIGHTS, else the torch hub cache, fetched there once)",
    )
    parser.add_argument(
        "--rebuild", action="store_true", help="build the archive even if one is up to date"
    )
    return parser


def prepare_archive(
    store: Path, model_config: Path | None, weights: Path | None, rebuild: bool = False
) -> None:
    """Build the archive into ``store`` when it is missing, was built by other code, or
    does not pack the ``model_config`` or ``weights`` given; SystemExit with one line when
    that cannot be done."""
    try:
        if not rebuild and archive.up_to_date(store, model_config, weights):
            return
        from nst.fetch_weights import weights_or_exit  # torch: only a build pays its import

        found = weights_or_exit(weights)
        print(f"building the model archive in {store}")
        archive.build(found, model_config or archive.DEFAULT_CONFIG, store)
    except (SettingsError, WeightsError) as exc:
        raise SystemExit(f"nst-server: {exc}") from None


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    run_dir = args.run_dir.resolve()
    if args.action == "stop":
        print("stopped" if stop(run_dir) else "no server running from", run_dir)
        return 0
    stop(run_dir)
    store = args.model_store.resolve()
    prepare_archive(store, args.model_config, args.weights, args.rebuild)
    props = start(args.config.resolve(), run_dir, args.log_dir.resolve(), store)
    histograms = os.environ.get(ADDRESS_ENV, DEFAULT_ADDRESS)
    print(
        f"{MODEL_NAME} is READY: inference {props['inference_address']}, management "
        f"{props['management_address']}, metrics "
        + (
            f"http://{histograms}/metrics (every series; TorchServe's own alone on "
            f"{props['metrics_address']}/metrics)"
            if histograms
            else f"{props['metrics_address']}/metrics"
        )
    )
    print(f"logs in {args.log_dir.resolve()}; stop with: nst-server stop --run-dir {run_dir}")
    print("try:\n  " + example(props))
    if props.get("web_address"):
        print(f"or open {props['web_address']} in a browser (the try-it page)")
    if props.get("jobs_address"):
        print(f"async jobs (submit, poll, cancel): {props['jobs_address']}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
