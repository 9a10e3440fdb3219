"""Python gRPC stubs for TorchServe's own protos, generated at test time.

The ``.proto`` files ship inside the installed frontend jar (``ts/frontend/model-server.jar``);
they are extracted into a temporary folder and compiled there with ``grpc_tools.protoc``, so no
generated or extracted file is ever committed.
"""

from __future__ import annotations

import importlib
import sys
import zipfile
from pathlib import Path
from types import SimpleNamespace

import grpc_tools
import ts
from grpc_tools import protoc

PROTOS = ("inference.proto", "management.proto")


def _extract(jar: Path, folder: Path) -> None:
    with zipfile.ZipFile(jar) as archive:
        for name in archive.namelist():
            if name.startswith(("proto/", "google/rpc/", "google/api/")) and name.endswith(
                ".proto"
            ):
                archive.extract(name, folder)


def generate(folder: Path) -> SimpleNamespace:
    """Compile TorchServe's inference and management protos into ``folder``; returns the
    modules as ``inference``, ``inference_grpc``, ``management`` and ``management_grpc``."""
    jar = Path(ts.__file__).parent / "frontend" / "model-server.jar"
    _extract(jar, folder)
    out = folder / "stubs"
    out.mkdir()
    bundled = Path(grpc_tools.__file__).parent / "_proto"  # google/protobuf/*.proto
    for proto in (*PROTOS, "google/rpc/status.proto"):
        source = proto if proto.startswith("google/") else f"proto/{proto}"
        code = protoc.main(
            [
                "protoc",
                f"-I{folder / 'proto'}",
                f"-I{folder}",
                f"-I{bundled}",
                f"--python_out={out}",
                f"--grpc_python_out={out}",
                str(folder / source),
            ]
        )
        if code != 0:
            raise RuntimeError(f"protoc failed on {proto}")
    sys.path.insert(0, str(out))
    load = importlib.import_module
    return SimpleNamespace(
        inference=load("inference_pb2"),
        inference_grpc=load("inference_pb2_grpc"),
        management=load("management_pb2"),
        management_grpc=load("management_pb2_grpc"),
    )
