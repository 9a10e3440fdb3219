"""Build ``model_store/style_transfer.mar`` with torch-model-archiver.

    nst-build-mar [--weights FILE] [--config model-config.yaml] [--out model_store]
    nst-build-mar --override FILE [...]     # model-config.yaml with FILE merged over it
    nst-build-mar [--override FILE] --packed-in DIR   # exit 0 if DIR's .mar packs that

(``python scripts/build_mar.py`` takes the same options.)
The archive holds the handler entry point, the ``handler`` and ``nst`` packages (as extra
files), the weights as the serialized file, and model-config.yaml.
"""

from __future__ import annotations

import argparse
import importlib
import os
import shutil
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

import yaml

from nst.errors import WeightsError
from nst.fetch_weights import FetchError, advice, fetch
from nst.weights import LOCAL_WEIGHTS, WEIGHTS_ENV, default_weights_path, find_weights, load_weights

from . import project_root

ROOT = project_root()

MODEL_NAME = "style_transfer"
PACKAGES = ("nst", "handler")


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
    merged = yaml.safe_load(config.read_text()) or {}
    if override is not None:
        merged = merge(merged, yaml.safe_load(override.read_text()) or {})
    return merged


def packed_config(mar: Path) -> dict | None:
    """The model-config.yaml inside ``mar``, or None when there is no readable archive."""
    try:
        with zipfile.ZipFile(mar) as archive:
            return yaml.safe_load(archive.read("model-config.yaml"))
    except (OSError, KeyError, zipfile.BadZipFile, yaml.YAMLError):
        return None


def package_dir(name: str) -> Path:
    """Where an installed (or checked-out) package's sources are."""
    return Path(str(importlib.import_module(name).__file__)).parent


def build(
    weights: Path, config: Path, out_dir: Path, version: str = "1.0", override: Path | None = None
) -> Path:
    """Stage the packages and run torch-model-archiver; returns the .mar path."""
    load_weights(weights)  # fail here, not in the worker, on a bad weights file
    out_dir.mkdir(parents=True, exist_ok=True)
    archiver = Path(sys.executable).with_name("torch-model-archiver")
    with tempfile.TemporaryDirectory() as tmp:
        packed = config
        if override is not None:
            packed = Path(tmp) / "model-config.yaml"
            packed.write_text(yaml.safe_dump(model_config(config, override), sort_keys=False))
        stage = Path(tmp) / "extra"
        for package in PACKAGES:
            shutil.copytree(
                package_dir(package),
                stage / package,
                ignore=shutil.ignore_patterns("__pycache__", "*.pyc"),
            )
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
                "--force",
            ],
            check=True,
        )
    return out_dir / f"{MODEL_NAME}.mar"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--weights",
        type=Path,
        help="VGG19 weights (default: found as docs/engine.md says, else fetched)",
    )
    parser.add_argument("--config", type=Path, default=ROOT / "model-config.yaml")
    parser.add_argument("--out", type=Path, default=ROOT / "model_store")
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
    args = parser.parse_args(argv)
    if args.packed_in:
        wanted = model_config(args.config, args.override)
        return 0 if packed_config(args.packed_in / f"{MODEL_NAME}.mar") == wanted else 1
    weights = args.weights or find_weights()
    if weights is None and not os.environ.get(WEIGHTS_ENV):
        try:
            print(f"no VGG19 weights found; fetching the official ones into {LOCAL_WEIGHTS}")
            fetch(LOCAL_WEIGHTS)
        except FetchError as exc:
            print(advice(exc), file=sys.stderr)
            return 1
        weights = LOCAL_WEIGHTS
    try:
        mar = build(
            weights or default_weights_path(), args.config, args.out, override=args.override
        )
    except WeightsError as exc:
        print(exc, file=sys.stderr)
        return 1
    print(f"built {mar} ({mar.stat().st_size / 1e6:.1f} MB)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
