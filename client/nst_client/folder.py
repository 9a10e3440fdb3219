"""A folder of images through the server: bounded requests in flight, resumable."""

from __future__ import annotations

import os
from collections import Counter
from collections.abc import Callable, Iterator
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from pathlib import Path

from .errors import InvalidRequest, TooLarge

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".webp", ".bmp", ".gif", ".tif", ".tiff")


@dataclass
class FolderReport:
    """What a folder run did: files written, skipped (already done) and failed."""

    written: list[Path] = field(default_factory=list)
    skipped: list[Path] = field(default_factory=list)
    failed: dict[Path, str] = field(default_factory=dict)


def pending(source: Path, target: Path, suffix: str) -> Iterator[tuple[Path, Path, bool]]:
    """(input, output, already done) for every image of ``source`` and its subfolders, in
    name order; the output tree mirrors the input's. Images that share a name but not a
    suffix (``a.jpg``, ``a.png``) keep theirs in the output's name (``a.jpg.png``)."""
    images = sorted(_images(source, target), key=lambda path: path.relative_to(source).parts)
    stems = Counter(path.with_suffix("") for path in images)
    for path in images:
        relative = path.relative_to(source)
        if stems[path.with_suffix("")] > 1:
            relative = relative.with_name(relative.name + suffix)
        else:
            relative = relative.with_suffix(suffix)
        out = target / relative
        yield path, out, out.exists()


def _images(source: Path, target: Path) -> Iterator[Path]:
    """Image files under ``source``; hidden files and folders, and ``target`` where it lies
    inside ``source``, are left out."""
    skip = target.resolve()
    for root, folders, files in os.walk(source):
        folders[:] = [
            name
            for name in folders
            if not name.startswith(".") and (Path(root) / name).resolve() != skip
        ]
        for name in files:
            if not name.startswith(".") and Path(name).suffix.lower() in IMAGE_SUFFIXES:
                yield Path(root) / name


def write_atomically(data: bytes, path: Path) -> None:
    """Write to a temporary name, then rename: an interrupted run never leaves half a file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.part")
    tmp.write_bytes(data)
    os.replace(tmp, path)


def stylize_folder(
    stylize: Callable[[Path], bytes],
    source: Path,
    target: Path,
    suffix: str,
    in_flight: int,
    on_done: Callable[[], None] = lambda: None,
) -> FolderReport:
    """Stylise every image of ``source`` into ``target`` (see :func:`pending`; ``stylize``
    returns the encoded image) with at most ``in_flight`` requests running; files whose
    output exists are skipped. A bad image is reported and the run goes on; any other error
    (server down, wrong key) stops it."""
    target.mkdir(parents=True, exist_ok=True)
    report = FolderReport()
    jobs = []
    for path, out, done in pending(source, target, suffix):
        if done:
            report.skipped.append(path)
            on_done()
        else:
            jobs.append((path, out))
    with ThreadPoolExecutor(max_workers=max(1, in_flight)) as pool:
        running: dict[Future, tuple[Path, Path]] = {}
        queue = iter(jobs)
        try:
            while True:
                while len(running) < in_flight and (job := next(queue, None)):
                    running[pool.submit(stylize, job[0])] = job
                if not running:
                    return report
                finished, _ = wait(running, return_when=FIRST_COMPLETED)
                for future in finished:
                    path, out = running.pop(future)
                    _collect(future, path, out, report)
                    on_done()
        finally:
            for future in running:
                future.cancel()


def _collect(future: Future, path: Path, out: Path, report: FolderReport) -> None:
    try:
        write_atomically(future.result(), out)
        report.written.append(out)
    except (InvalidRequest, TooLarge) as exc:  # this file's fault: note it, go on
        report.failed[path] = str(exc)
