"""Build the model archive ``style_transfer.mar`` with torch-model-archiver.

    nst-build-mar [--weights FILE] [--config model-config.yaml] [--out DIR]
    nst-build-mar --override FILE [...]     # model-config.yaml with FILE merged over it
    nst-build-mar [--override FILE] --packed-in DIR   # exit 0 if DIR's .mar packs that

(``python scripts/build_mar.py`` takes the same options.)
The archive holds the handler entry point, the ``handler`` and ``nst`` packages (as extra
files), the weights as the serialized file, model-config.yaml, and ``build-info.json`` (what
it was built from, so ``nst-server start`` knows when to rebuild it). The ``handler:`` block
is checked first: a block the workers would refuse is refused here, in one line.
"""

from __future__ import annotations

import argparse
import hashlib
import importlib
import json
import shutil
import struct
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

import yaml

from handler import MODEL_NAME
from handler.settings import ServerSettings, SettingsError
from nst.errors import WeightsError
from nst.layers import deepest_conv, depth_through
from nst.version import version as package_version

from . import RESOURCES, add_version, server_home

PACKAGES = ("nst", "handler")
BUILD_INFO = "build-info.json"
DEFAULT_CONFIG = RESOURCES / "model-config.yaml"
MAX_SAFETENSORS_HEADER = 2**20  # a VGG19 file's header is a few KB


def default_store() -> Path:
    """Where archives go by default: ``model_store`` in :func:`~nst_server.server_home`."""
    return server_home() / "model_store"


def merge(base: dict, override: dict) -> dict:
    """``override`` over ``base``; nested mappings (``handler:``, its ``defaults:``) merge too."""
    merged = dict(base)
    for key, value in override.items():
        if isinstance(value, dict) and isinstance(merged.get(key), dict):
            value = merge(merged[key], value)
        merged[key] = value
    return merged


def model_config(config: Path, override: Path | None) -> dict:
    """The model-config that will be packed: ``config``, with ``override`` merged over it."""
    merged = _yaml_mapping(config)
    if override is not None:
        merged = merge(merged, _yaml_mapping(override))
    return merged


def _yaml_mapping(path: Path) -> dict:
    """A YAML file holding a mapping (empty: {}); SettingsError naming the file otherwise."""
    try:
        loaded = yaml.safe_load(path.read_text()) or {}
    except (OSError, yaml.YAMLError) as exc:
        raise SettingsError(f"{path}: {' '.join(str(exc).split())}") from exc
    if not isinstance(loaded, dict):
        raise SettingsError(f"{path}: must hold a mapping of settings")
    return loaded


def checked_config(config: Path, override: Path | None) -> dict:
    """:func:`model_config`, refused (SettingsError, one line naming the key) when its
    ``handler:`` block or ``responseTimeout`` is one the workers would refuse."""
    merged = model_config(config, override)
    ServerSettings.from_model_config(merged)
    return merged


def build_info(config: dict, weights: Path) -> dict:
    """What an archive is built from: the package version, a digest of the packed code, the
    model-config, the weights file."""
    return {
        "version": package_version(),
        "code": code_digest(),
        "config": config,
        "weights": _file_id(weights),
    }


def _file_id(path: Path) -> dict:
    """A file's path, size and modification time: a changed file gets another id."""
    stat = path.stat()
    return {"path": str(path.resolve()), "bytes": stat.st_size, "mtime_ns": stat.st_mtime_ns}


def code_digest() -> str:
    """sha256 over the packed packages' Python files and stubs (names and bytes): ``nst``'s
    exports are read from its ``__init__.pyi`` at run time."""
    digest = hashlib.sha256()
    for package in PACKAGES:
        base = package_dir(package)
        for path in sorted([*base.rglob("*.py"), *base.rglob("*.pyi")]):
            digest.update(str(path.relative_to(base.parent)).encode() + b"\0" + path.read_bytes())
    return digest.hexdigest()


def packed_info(mar: Path) -> dict | None:
    """The build-info.json inside ``mar``, or None (no archive, or one from an older build)."""
    try:
        with zipfile.ZipFile(mar) as archive:
            return json.loads(archive.read(BUILD_INFO))
    except (OSError, KeyError, ValueError, zipfile.BadZipFile):
        return None


def packed_config(mar: Path) -> dict | None:
    """The model-config.yaml inside ``mar``, or None when there is no readable archive."""
    try:
        with zipfile.ZipFile(mar) as archive:
            return yaml.safe_load(archive.read("model-config.yaml"))
    except (OSError, KeyError, zipfile.BadZipFile, yaml.YAMLError):
        return None


def served_settings(model_config: Path) -> ServerSettings:
    """The handler's settings (before its device's defaults) from a model-config.yaml or
    the model archive that packs one; SystemExit in one line when neither is readable."""
    if model_config.suffix == ".mar":
        config = packed_config(model_config)
        if config is None:
            raise SystemExit(f"{model_config} packs no readable model-config.yaml")
    else:
        try:
            config = yaml.safe_load(model_config.read_text()) or {}
        except (OSError, yaml.YAMLError) as exc:
            raise SystemExit(f"{model_config}: {exc}") from None
    try:
        return ServerSettings.from_model_config(config)
    except SettingsError as exc:
        raise SystemExit(f"{model_config}: {exc}") from None


def packed_depth(mar: Path) -> int | None:
    """How many layers of VGG19's ``features`` the weights packed in ``mar`` cover, from the
    safetensors header alone (no tensor is read); None when that cannot be told (no
    readable archive, weights in another format)."""
    try:
        with zipfile.ZipFile(mar) as archive:
            manifest = json.loads(archive.read("MAR-INF/MANIFEST.json"))
            name = manifest["model"]["serializedFile"]
            if not name.endswith(".safetensors"):
                return None
            with archive.open(name) as packed:
                (length,) = struct.unpack("<Q", packed.read(8))
                if length > MAX_SAFETENSORS_HEADER:
                    return None
                header = json.loads(packed.read(length))
    except (OSError, KeyError, TypeError, ValueError, struct.error, zipfile.BadZipFile):
        return None
    if not isinstance(header, dict):
        return None
    last = deepest_conv(key for key in header if key != "__metadata__")
    return None if last is None else depth_through(last)


def package_dir(name: str) -> Path:
    """Where an installed (or checked-out) package's sources are."""
    return Path(str(importlib.import_module(name).__file__)).parent


def build(
    weights: Path, config: Path, out_dir: Path, version: str = "1.0", override: Path | None = None
) -> Path:
    """Check the config and weights, stage the packages and run torch-model-archiver;
    returns the .mar path. Raises SettingsError or WeightsError before writing anything."""
    from nst.weights import load_weights  # torch: only a build pays its import

    merged = checked_config(config, override)
    load_weights(weights)  # fail here, not in the worker, on a bad weights file
    info = build_info(merged, weights)
    out_dir.mkdir(parents=True, exist_ok=True)
    archiver = Path(sys.executable).with_name("torch-model-archiver")
    with tempfile.TemporaryDirectory() as tmp:
        packed = config
        if override is not None:
            packed = Path(tmp) / "model-config.yaml"
            packed.write_text(yaml.safe_dump(merged, sort_keys=False))
        stage = Path(tmp) / "extra"
        for package in PACKAGES:
            shutil.copytree(
                package_dir(package),
                stage / package,
                ignore=shutil.ignore_patterns("__pycache__", "*.pyc"),
            )
        (stage / BUILD_INFO).write_text(json.dumps(info, indent=1))
        # torch-model-archiver copies the *contents* of an extra-files directory to the
        # archive root, so staging nst/ and handler/ under one folder keeps them packages.
        subprocess.run(
            [
                str(archiver),
                "--model-name",
                MODEL_NAME,
                "--version",
                version,
                "--serialized-file",
                str(weights),
                "--handler",
                str(package_dir("handler") / "style_transfer_handler.py"),
                "--extra-files",
                str(stage),
                "--config-file",
                str(packed),
                "--export-path",
                str(out_dir),
                # Stored, not deflated: TorchServe unpacks the archive at each start and a
                # pod with a ConfigMap override may rebuild it; deflating the weights costs
                # seconds both ways for a smaller file (docs/benchmarks.md, "Start-up").
                "--archive-format",
                "zip-store",
                "--force",
            ],
            check=True,
        )
    return out_dir / f"{MODEL_NAME}.mar"


def up_to_date(store: Path, config: Path | None = None, weights: Path | None = None) -> bool:
    """True when ``store`` holds an archive built by this version from this code, and from
    ``config`` and ``weights`` where they are given (else whatever it was built from, such
    as an ``--override``)."""
    info = packed_info(store / f"{MODEL_NAME}.mar")
    built_by = (package_version(), code_digest())
    if info is None or (info.get("version"), info.get("code")) != built_by:
        return False
    if config is not None and info.get("config") != _as_json(checked_config(config, None)):
        return False
    return weights is None or (weights.is_file() and info.get("weights") == _file_id(weights))


def _as_json(value: dict) -> dict:
    """``value`` as it reads back from JSON (what build-info.json holds)."""
    return json.loads(json.dumps(value))


def parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        description=__doc__.splitlines()[0], formatter_class=argparse.ArgumentDefaultsHelpFormatter
    )
    add_version(parser)
    parser.add_argument(
        "--weights",
        type=Path,
        help="VGG19 weights (default: $NST_WEIGHTS, else the torch hub cache, fetched there "
        "on first use)",
    )
    parser.add_argument(
        "--config", type=Path, default=DEFAULT_CONFIG, help="the model's settings (YAML)"
    )
    parser.add_argument(
        "--out", type=Path, default=default_store(), help="folder the archive is written to"
    )
    parser.add_argument(
        "--override",
        type=Path,
        metavar="FILE",
        help="YAML merged over --config (e.g. a Kubernetes ConfigMap)",
    )
    parser.add_argument(
        "--packed-in",
        type=Path,
        metavar="DIR",
        help="only check: exit 0 if DIR's .mar already packs this config, else 1",
    )
    return parser


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    try:
        if args.packed_in:  # a bad config differs from what was packed: the build says why
            wanted = model_config(args.config, args.override)
            return 0 if packed_config(args.packed_in / f"{MODEL_NAME}.mar") == wanted else 1
        checked_config(args.config, args.override)  # before any download
        from nst.fetch_weights import weights_or_exit  # torch: only a build pays its import

        mar = build(weights_or_exit(args.weights), args.config, args.out, override=args.override)
    except (SettingsError, WeightsError) as exc:
        print(f"nst-build-mar: {exc}", file=sys.stderr)
        return 2
    print(f"built {mar} ({mar.stat().st_size / 1e6:.1f} MB)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
