"""Probes for containers and pods: is the frontend up, is the model READY, is it idle?

    python scripts/healthcheck.py live   # the JVM answers and a listed worker process lives
    python scripts/healthcheck.py ready  # style_transfer has a READY worker that lives
    python scripts/healthcheck.py drain  # wait until no request is queued or running

Exit status 0 means yes. ``/ping`` is not used: it says Healthy before the model has loaded.
Standard library only, so a probe costs one Python start. The management address comes from
``TS_MANAGEMENT_ADDRESS`` (default http://127.0.0.1:8081). With token authorisation on,
TorchServe writes ``key_file.json`` into its working directory; the probe reads the management
key from ``NST_KEY_FILE`` (default ``./key_file.json``, so run it from the same directory).
The management API keeps listing a worker as READY after its process died or hangs stopped
(seen after a frontend error closed a worker's connection), so both checks also look at the
worker's process (``/proc``; the probe runs in the server's container, so it sees its pids).
``drain`` is the Kubernetes preStop hook: TorchServe has no graceful shutdown, so the hook keeps
the pod alive until the queue is empty and no busy marker is left in ``NST_STATE_DIR``.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

from handler import MODEL_NAME
from handler.activity import STATE_DIR_ENV, busy_pids, pid_alive
from handler.auth import KEYS_FILE_ENV

from . import add_version

KEY_PROXY_ENV = "NST_KEY_PROXY_ADDRESS"  # where the entrypoint runs the key proxy


def management_key(key_file: Path) -> str | None:
    """The management key from TorchServe's key file, or None when token auth is off."""
    try:
        return json.loads(key_file.read_text())["management"]["key"]
    except FileNotFoundError:
        return None


def get_json(url: str, key: str | None, timeout: float):
    """GET ``url`` (bearer ``key`` if given) and parse the JSON reply."""
    request = urllib.request.Request(url)
    if key:
        request.add_header("Authorization", f"Bearer {key}")
    with urllib.request.urlopen(request, timeout=timeout) as reply:
        return json.load(reply)


def describe(management: str, key: str | None, timeout: float) -> dict:
    """The management API's description of the model (first version)."""
    return get_json(f"{management}/models/{MODEL_NAME}", key, timeout)[0]


def process_serves(pid: int) -> bool:
    """True unless process ``pid`` is gone, a zombie or stopped (a worker that cannot answer).
    A pid the management API does not know yet (0 or less: still starting) counts as alive."""
    if pid <= 0:
        return True
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return False
    except OSError:  # no /proc here: whether the pid exists is all that can be told
        return pid_alive(pid)
    state = stat.rpartition(")")[2].split()[0]  # the field after the command name
    return state not in ("Z", "X", "x", "T", "t")


def worker_pid(worker: dict) -> int:
    try:
        return int(worker.get("pid", 0))
    except (TypeError, ValueError):
        return 0


def is_live(management: str, key: str | None, timeout: float) -> bool:
    """The JVM answers (any HTTP status) and, once the model lists workers, one of their
    processes lives: all of them dead or stopped means nothing will ever serve again."""
    try:
        get_json(f"{management}/models", key, timeout)
    except urllib.error.HTTPError:
        return True
    except (OSError, ValueError):
        return False
    try:
        workers = describe(management, key, timeout).get("workers", [])
    except (OSError, ValueError, KeyError, IndexError):
        return True  # the model is not registered yet: the JVM's answer is what counts
    return not workers or any(process_serves(worker_pid(w)) for w in workers)


def answers(address: str | None, timeout: float) -> bool:
    """The key proxy at ``address`` (``host:port``; none: nothing to check) answers ``/ping``
    with any HTTP status: the public door of the container is open."""
    if not address:
        return True
    host, _, port = address.rpartition(":")
    host = "127.0.0.1" if host in ("", "0.0.0.0") else host
    try:
        with urllib.request.urlopen(f"http://{host}:{port}/ping", timeout=timeout):
            return True
    except urllib.error.HTTPError:
        return True
    except OSError:
        return False


def is_ready(management: str, key: str | None, timeout: float) -> bool:
    """True when the model has at least one READY worker whose process lives."""
    try:
        model = describe(management, key, timeout)
    except (OSError, ValueError, KeyError, IndexError):
        return False
    return any(
        w.get("status") == "READY" and process_serves(worker_pid(w))
        for w in model.get("workers", [])
    )


def is_idle(management: str, key: str | None, timeout: float, state_dir: str | None) -> bool:
    """No queued request and no worker inside a batch (unreachable server counts as idle)."""
    if state_dir and busy_pids(state_dir):
        return False
    try:
        model = describe(management, key, timeout)
    except (OSError, ValueError, KeyError, IndexError):
        return True
    return int(model.get("jobQueueStatus", {}).get("pendingRequests", 0)) == 0


def drain(
    management: str, key: str | None, timeout: float, state_dir: str | None, poll_s: float = 1.0
) -> bool:
    """Wait up to ``timeout`` s until idle twice in a row; True if it got there."""
    deadline = time.monotonic() + timeout
    idle_polls = 0
    while time.monotonic() < deadline:
        idle_polls = idle_polls + 1 if is_idle(management, key, 5.0, state_dir) else 0
        if idle_polls >= 2:
            return True
        time.sleep(poll_s)
    return False


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__.splitlines()[0], formatter_class=argparse.ArgumentDefaultsHelpFormatter
    )
    add_version(parser)
    parser.add_argument(
        "check", choices=("live", "ready", "drain"), help="which probe (see the module's notes)"
    )
    parser.add_argument(
        "--management",
        default=os.environ.get("TS_MANAGEMENT_ADDRESS", "http://127.0.0.1:8081"),
        help="TorchServe's management API ($TS_MANAGEMENT_ADDRESS sets the default)",
    )
    parser.add_argument(
        "--key-file",
        type=Path,
        default=Path(os.environ.get("NST_KEY_FILE", "key_file.json")),
        help="TorchServe's key file, for its management key ($NST_KEY_FILE)",
    )
    parser.add_argument(
        "--state-dir",
        default=os.environ.get(STATE_DIR_ENV),
        help=f"the handlers' busy markers, for drain (${STATE_DIR_ENV})",
    )
    parser.add_argument(
        "--key-proxy",
        default=os.environ.get(KEY_PROXY_ENV) if os.environ.get(KEYS_FILE_ENV) else None,
        help="host:port of the container's key proxy, which must answer too (default: "
        f"${KEY_PROXY_ENV} where ${KEYS_FILE_ENV} is set, as the entrypoint runs it)",
    )
    parser.add_argument(
        "--timeout",
        type=float,
        default=5.0,
        help="seconds per HTTP call; for drain, the longest wait",
    )
    args = parser.parse_args(argv)
    key = management_key(args.key_file)
    if args.check == "live":
        ok = is_live(args.management, key, args.timeout) and answers(args.key_proxy, args.timeout)
    elif args.check == "ready":
        ok = is_ready(args.management, key, args.timeout) and answers(args.key_proxy, args.timeout)
    else:
        ok = drain(args.management, key, args.timeout, args.state_dir)
    print(f"{args.check}: {'yes' if ok else 'no'}")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
