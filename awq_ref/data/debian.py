"""Text the project ships without a hub: Debian packages fetched, unpacked once and cached.

``apt-get download`` fetches a ``.deb`` into ``<cache>/debs`` (nothing is installed) and
``dpkg-deb -x`` unpacks it into a temporary folder; a corpus module reads what it needs from
there into its own folder under ``<cache>/text``. ``extracted_once`` builds that folder under a
lock and atomically (a staging folder renamed into place), so parallel processes build it once
and a failed extraction leaves nothing behind; ``SHA256SUMS`` marks a finished folder.
"""
from __future__ import annotations

import contextlib
import hashlib
import subprocess
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path

from awq_harness.awq_ref.checkpoint.atomic import atomic_directory, file_lock
from awq_harness.awq_ref.data.cache import cache_dir
from awq_harness.awq_ref.errors import DataError

DONE = "SHA256SUMS"


def extracted_once(name: str, build: Callable[[Path], None]) -> Path:
    """``<cache>/text/<name>``, built by ``build(staging)`` on first use (which writes ``DONE`` last)."""
    dest = cache_dir() / "text" / name
    if not (dest / DONE).is_file():
        with file_lock(cache_dir() / "text" / f".{name}.lock"):
            if not (dest / DONE).is_file():
                with atomic_directory(dest) as staging:
                    build(staging)
    return dest


def fetch_deb(package: str, pattern: str, apt_target: str, what: str) -> Path:
    """The cached ``.deb`` matching ``pattern`` (a glob in ``<cache>/debs``; the newest if several),
    else ``apt-get download apt_target`` into that folder first. ``what`` names the text for errors."""
    debs = cache_dir() / "debs"
    debs.mkdir(parents=True, exist_ok=True)
    found = sorted(debs.glob(pattern))
    if found:
        return found[-1]
    cmd = ["apt-get", "download", apt_target]
    try:
        subprocess.run(cmd, cwd=debs, check=True, capture_output=True, text=True)
    except (OSError, subprocess.CalledProcessError) as err:
        detail = getattr(err, "stderr", "") or str(err)
        raise DataError(f"could not fetch {what} with '{' '.join(cmd)}' (run 'apt-get update' first, or put the "
                        f".deb into {debs}): {detail.strip()}") from None
    found = sorted(debs.glob(pattern))
    if not found:
        raise DataError(f"'{' '.join(cmd)}' fetched no {package} matching {pattern} into {debs}")
    return found[-1]


@contextlib.contextmanager
def unpacked(deb: Path) -> Iterator[Path]:
    """The package's files in a temporary folder (``dpkg-deb -x``), removed afterwards."""
    with tempfile.TemporaryDirectory() as tmp:
        subprocess.run(["dpkg-deb", "-x", str(deb), tmp], check=True)
        yield Path(tmp)


def write_pinned(out: Path, texts: dict[str, str], pinned: dict[str, str], source: str) -> None:
    """Write each text as ``<name>.txt`` after checking its sha256 against ``pinned[name]``, then
    ``DONE`` (the sums), which marks the folder finished. ``source`` names the .deb in errors."""
    sums = []
    for name, text in texts.items():
        digest = hashlib.sha256(text.encode()).hexdigest()
        if digest != pinned[name]:
            raise DataError(f"{source}: {name} extracted with sha256 {digest}, expected {pinned[name]}")
        (out / f"{name}.txt").write_text(text, encoding="utf-8")
        sums.append(f"{digest}  {name}.txt\n")
    (out / DONE).write_text("".join(sums))
