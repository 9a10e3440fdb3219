"""Build the server image with podman on this machine and run it as the Kubernetes Deployment
runs its server container, for the image tests (tests/image/) and ``make image-cpu``.

    python -m tests.image.podman build   # base image if missing, then the CPU image

No registry can be reached here, so the base is a Debian bookworm made with debootstrap; pip
inside the build uses this machine's pip sources (its file:// indexes and wheel folders,
mounted read-only, and its CA bundle), and the weights come from the development copy
through ``image-weights/``, hash-checked like an air-gapped build's.
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from nst.fetch_weights import file_sha256
from nst.weights import WEIGHTS_ENV
from tests.live_server import DEV_WEIGHTS

ROOT = Path(__file__).resolve().parents[2]
CONTAINERS_CONF = Path(__file__).with_name("containers.conf")
BASE_IMAGE = "localhost/debian:bookworm"
IMAGE = os.environ.get("NST_TEST_IMAGE", "localhost/nst-server:cpu")
DEPLOYMENT = ROOT / "deploy/k8s/deployment.yaml"
BUILD_CA = "/run/build-ca.crt"  # where the machine's CA bundle is mounted during builds


def podman_env() -> dict[str, str]:
    """The environment podman runs with here: this machine's settings file."""
    return {**os.environ, "CONTAINERS_CONF": str(CONTAINERS_CONF)}


def podman(*args: str, timeout: float = 120, check: bool = True) -> subprocess.CompletedProcess:
    """Run podman with this machine's settings; output captured as text."""
    result = subprocess.run(
        ["podman", *args], env=podman_env(), capture_output=True, text=True, timeout=timeout
    )
    if check and result.returncode != 0:
        raise RuntimeError(f"podman {shlex.join(args)} failed:\n{result.stderr[-3000:]}")
    return result


def image_id(name: str) -> str | None:
    """The image's id, or None when there is no such image."""
    result = podman("image", "inspect", "--format", "{{.Id}}", name, check=False)
    return result.stdout.strip() if result.returncode == 0 else None


def debian_mirror() -> str:
    """The Debian mirror apt uses on this machine (deb822 sources), or deb.debian.org."""
    for sources in sorted(Path("/etc/apt/sources.list.d").glob("*.sources")):
        for line in sources.read_text().splitlines():
            if line.startswith("URIs:"):
                return line.split()[1]
    return "http://deb.debian.org/debian"


def ensure_base(name: str = BASE_IMAGE) -> None:
    """Import a minimal Debian bookworm as ``name`` unless it exists (debootstrap, ~30 s)."""
    if image_id(name):
        return
    with tempfile.TemporaryDirectory() as tmp:
        rootfs = Path(tmp) / "rootfs"
        subprocess.run(
            ["debootstrap", "--variant=minbase", "bookworm", str(rootfs), debian_mirror()],
            check=True,
            capture_output=True,
            timeout=900,
        )
        tar = subprocess.Popen(["tar", "-C", str(rootfs), "-c", "."], stdout=subprocess.PIPE)
        subprocess.run(
            ["podman", "import", "-", name],
            stdin=tar.stdout,
            env=podman_env(),
            check=True,
            capture_output=True,
            timeout=600,
        )
        tar.wait()


def pip_settings() -> dict[str, str]:
    """This machine's pip settings (environment first, then its config files)."""
    listing = subprocess.run(
        [sys.executable, "-m", "pip", "config", "list"], capture_output=True, text=True
    ).stdout
    settings: dict[str, str] = {}
    for line in listing.splitlines():
        key, _, value = line.partition("=")
        settings.setdefault(key.rsplit(".", 1)[-1], value.strip("'"))
    return settings


def pip_build_options() -> list[str]:
    """podman build options that give pip in the build this machine's pip sources."""
    settings = pip_settings()
    options: list[str] = []
    mounted: set[str] = set()

    def mount(path: str) -> None:
        if path not in mounted and Path(path).exists():
            mounted.add(path)
            options.extend(["-v", f"{path}:{path}:ro"])

    for index in settings.get("extra-index-url", "").split():
        if index.startswith("file://"):
            mount(str(Path(index[len("file://") :]).parent))  # the index and its files/
    if settings.get("extra-index-url"):
        options.extend(["--build-arg", f"PIP_EXTRA_INDEX_URL={settings['extra-index-url']}"])
    links = [p for p in settings.get("find-links", "").split() if Path(p).exists()]
    for path in links:
        mount(path)
    if links:
        options.extend(["--build-arg", f"PIP_FIND_LINKS={' '.join(links)}"])
    if settings.get("cert") and Path(settings["cert"]).is_file():
        options.extend(["-v", f"{settings['cert']}:{BUILD_CA}:ro"])
        options.extend(["--build-arg", f"PIP_CERT={BUILD_CA}"])
    return options


def dev_weights() -> Path:
    """The development weights (``$NST_WEIGHTS`` or ../shared)."""
    return Path(os.environ.get(WEIGHTS_ENV) or DEV_WEIGHTS)


def stage_weights(source: Path) -> tuple[str, str]:
    """Copy ``source`` into image-weights/ (the build's weights folder); (name, sha256)."""
    digest = file_sha256(source)
    staged = ROOT / "image-weights" / source.name
    if not staged.is_file() or file_sha256(staged) != digest:
        shutil.copyfile(source, staged)
    return source.name, digest


def build(tag: str = IMAGE, log: Path | None = None, weights: Path | None = None) -> float:
    """Build the CPU image from the project's Dockerfile; returns the build's seconds.

    The previous image of ``tag`` is removed when the build replaces it (6 GB each)."""
    ensure_base()
    name, sha256 = stage_weights(weights or dev_weights())
    previous = image_id(tag)
    command = [
        "build",
        "--format=docker",  # OCI images drop HEALTHCHECK
        "--network=host",
        *pip_build_options(),
        "--build-arg",
        f"BASE_IMAGE={BASE_IMAGE}",
        "--build-arg",
        f"WEIGHTS_FILE={name}",
        "--build-arg",
        f"WEIGHTS_SHA256={sha256}",
        "-t",
        tag,
        str(ROOT),
    ]
    start = time.monotonic()
    result = podman(*command, timeout=1800, check=False)
    seconds = time.monotonic() - start
    if log is not None:
        log.parent.mkdir(parents=True, exist_ok=True)
        log.write_text(result.stdout + result.stderr)
    if result.returncode != 0:
        raise RuntimeError(f"podman build failed:\n{(result.stdout + result.stderr)[-4000:]}")
    if previous and previous != image_id(tag):
        podman("rmi", previous, check=False)
    return seconds


def inspect_image(tag: str = IMAGE) -> dict:
    """podman's description of the image (User, Healthcheck, Size, Config, ...)."""
    return json.loads(podman("image", "inspect", tag).stdout)[0]


@dataclass
class PodSpec:
    """What deploy/k8s/deployment.yaml asks of its server container."""

    env: dict[str, str]
    mounts: dict[str, tuple[str, bool]]  # volume name -> (mount path, read-only)
    volumes: dict[str, str]  # volume name -> kind (configMap, secret, emptyDir)
    ports: dict[str, int]  # port name -> container port
    user: int
    group: int
    read_only_root: bool
    drop_capabilities: list[str]
    no_new_privileges: bool
    grace_s: int

    @classmethod
    def from_deployment(cls, path: Path = DEPLOYMENT, container: str = "server") -> PodSpec:
        pod = yaml.safe_load(path.read_text())["spec"]["template"]["spec"]
        spec = next(c for c in pod["containers"] if c["name"] == container)
        security = spec["securityContext"]
        return cls(
            env={e["name"]: e["value"] for e in spec.get("env", [])},
            mounts={
                m["name"]: (m["mountPath"], m.get("readOnly", False)) for m in spec["volumeMounts"]
            },
            volumes={v["name"]: next(k for k in v if k != "name") for v in pod["volumes"]},
            ports={p["name"]: p["containerPort"] for p in spec["ports"]},
            user=pod["securityContext"]["runAsUser"],
            group=pod["securityContext"]["runAsGroup"],
            read_only_root=security["readOnlyRootFilesystem"],
            drop_capabilities=security["capabilities"]["drop"],
            no_new_privileges=not security["allowPrivilegeEscalation"],
            grace_s=pod["terminationGracePeriodSeconds"],
        )


@dataclass
class Container:
    """A running container of the image, its published ports on 127.0.0.1."""

    name: str
    ports: dict[str, int]  # port name -> host port
    volumes: dict[str, Path]  # volume name -> host folder
    spec: PodSpec
    started: float = field(default_factory=time.monotonic)

    def url(self, port: str) -> str:
        return f"http://127.0.0.1:{self.ports[port]}"

    def healthy(self) -> bool:
        """The image's HEALTHCHECK command, run once now."""
        return podman("healthcheck", "run", self.name, check=False, timeout=60).returncode == 0

    def wait_healthy(self, timeout: float) -> float:
        """Seconds from the start until the HEALTHCHECK passes; raises after ``timeout``."""
        while time.monotonic() - self.started < timeout:
            if self.healthy():
                return time.monotonic() - self.started
            if self.state()["Status"] != "running":
                raise RuntimeError(f"{self.name} stopped:\n{self.logs()}")
            time.sleep(2)
        raise TimeoutError(f"{self.name} not healthy after {timeout} s:\n{self.logs()}")

    def state(self) -> dict:
        return json.loads(podman("inspect", "--format", "{{json .State}}", self.name).stdout)

    def logs(self, last: int = 6000) -> str:
        """The container's output (stdout and stderr), its ``last`` characters (0: all)."""
        result = podman("logs", self.name, check=False)
        text = result.stdout + result.stderr
        return text[-last:] if last else text

    def exec(self, *command: str) -> subprocess.CompletedProcess:
        return podman("exec", self.name, *command, check=False)

    def process_users(self) -> list[str]:
        """The host uid of every process in the container."""
        table = podman("top", self.name, "huser").stdout.split()
        return table[1:]  # after the header

    def changed_paths(self) -> list[str]:
        """Paths added, changed or deleted in the container's own filesystem layer."""
        return [line.split(maxsplit=1)[1] for line in podman("diff", self.name).stdout.splitlines()]

    def stop(self) -> tuple[float, int]:
        """SIGTERM, SIGKILL after the Deployment's grace period: (seconds, exit status)."""
        start = time.monotonic()
        podman("stop", "-t", str(self.spec.grace_s), self.name, timeout=self.spec.grace_s + 60)
        return time.monotonic() - start, int(self.state()["ExitCode"])

    def restart(self) -> None:
        """Start the stopped container again, with the same volumes."""
        podman("start", self.name)
        self.started = time.monotonic()

    def remove(self) -> None:
        podman("rm", "-f", "-t", "0", self.name, check=False)


def prepare_volumes(spec: PodSpec, base: Path, files: dict[str, dict[str, str]]) -> dict[str, Path]:
    """One host folder per volume: ``files[name]`` for ConfigMaps and Secrets, empty folders
    owned by the pod's user and group (``fsGroup``) for emptyDirs."""
    folders = {}
    for name, kind in spec.volumes.items():
        folder = base / name
        folder.mkdir(parents=True)
        for file_name, text in files.get(name, {}).items():
            (folder / file_name).write_text(text)
        if kind == "emptyDir":
            os.chown(folder, spec.user, spec.group)
        folders[name] = folder
    missing = [n for n, k in spec.volumes.items() if k != "emptyDir" and n not in files]
    if missing:
        raise ValueError(f"no files given for the volumes {missing}")
    return folders


def run(
    name: str, spec: PodSpec, volumes: dict[str, Path], ports: dict[str, int], tag: str = IMAGE
) -> Container:
    """Start the image as the Deployment's server container (user, read-only root, dropped
    capabilities, mounts, environment); ``ports`` maps port names to loopback host ports."""
    options = ["--user", f"{spec.user}:{spec.group}", "--group-add", str(spec.group)]
    if spec.read_only_root:
        options += ["--read-only", "--read-only-tmpfs=false"]  # no tmpfs Kubernetes lacks
    options += [f"--cap-drop={cap}" for cap in spec.drop_capabilities]
    if spec.no_new_privileges:
        options += ["--security-opt", "no-new-privileges"]
    for volume, (path, read_only) in spec.mounts.items():
        options += ["-v", f"{volumes[volume]}:{path}" + (":ro" if read_only else "")]
    for key, value in spec.env.items():
        options += ["-e", f"{key}={value}"]
    for port_name, host_port in ports.items():
        options += ["-p", f"127.0.0.1:{host_port}:{spec.ports[port_name]}"]
    podman("run", "-d", "--name", name, *options, tag)
    return Container(name, ports, volumes, spec)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("command", choices=["build"])
    parser.add_argument("--tag", default=IMAGE)
    args = parser.parse_args(argv)
    seconds = build(args.tag, ROOT / "out/image-build.log")
    size = inspect_image(args.tag)["Size"]
    print(f"built {args.tag} in {seconds:.0f} s: {size / 1e9:.2f} GB (log: out/image-build.log)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
