#!/usr/bin/env python3
"""Build ``model_store/style_transfer.mar`` with torch-model-archiver.

    python scripts/build_mar.py [--weights FILE] [--config model-config.yaml] [--out model_store]

The archive holds the handler entry point, the ``handler`` and ``nst`` packages (as extra
files), the weights as the serialized file, and model-config.yaml.
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
from nst.weights import default_weights_path, load_weights  # noqa: E402

MODEL_NAME = "style_transfer"
PACKAGES = ("nst", "handler")


def build(weights: Path, config: Path, out_dir: Path, version: str = "1.0") -> Path:
    """Stage the packages and run torch-model-archiver; returns the .mar path."""
    load_weights(weights)  # fail here, not in the worker, on a bad weights file
    out_dir.mkdir(parents=True, exist_ok=True)
    archiver = Path(sys.executable).with_name("torch-model-archiver")
    with tempfile.TemporaryDirectory() as tmp:
        stage = Path(tmp) / "extra"
        for package in PACKAGES:
            shutil.copytree(ROOT / package, stage / package,
                            ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
        # torch-model-archiver copies the *contents* of an extra-files directory to the
        # archive root, so staging nst/ and handler/ under one folder keeps them packages.
        subprocess.run([str(archiver), "--model-name", MODEL_NAME, "--version", version,
                        "--serialized-file", str(weights),
                        "--handler", str(ROOT / "handler/style_transfer_handler.py"),
                        "--extra-files", str(stage), "--config-file", str(config),
                        "--export-path", str(out_dir), "--force"], check=True)
    return out_dir / f"{MODEL_NAME}.mar"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--weights", type=Path, default=default_weights_path())
    parser.add_argument("--config", type=Path, default=ROOT / "model-config.yaml")
    parser.add_argument("--out", type=Path, default=ROOT / "model_store")
    args = parser.parse_args(argv)
    mar = build(args.weights, args.config, args.out)
    print(f"built {mar} ({mar.stat().st_size / 1e6:.1f} MB)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
