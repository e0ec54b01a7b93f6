"""The second text domain: Python's own documentation, from Debian's ``python3.11-doc``.

Provenance: Debian package ``python3.11-doc`` (3.11.2; the documentation is under the PSF
licence, ``/usr/share/doc/python3.11-doc/copyright``). The HTML build ships the reST sources
of every page as ``html/_sources/<section>/<page>.rst.txt``; we read those plain-text files
(fetched with ``apt-get download``, unpacked with ``dpkg-deb -x``, never installed).

The text is technical prose with code samples and reST markup, far from Austen's novels, so
calibrating on one and evaluating on the other tests whether calibration text matters.

Splits, fixed and disjoint by section:
  * evaluation (held out): the tutorial (``tutorial/*.rst.txt``, in file-name order);
  * calibration: the HOWTOs, the FAQ and the language reference.
Each page's text is pinned by sha256 over the whole split (pages joined as described).
Debian rebuilds of 3.11.2 (``+deb12uN``) keep these sources; any revision whose pages hash
the same is accepted.
"""
from __future__ import annotations

import hashlib
import subprocess
import tempfile
from pathlib import Path

from awq_harness.awq_ref.checkpoint.atomic import atomic_directory, file_lock
from awq_harness.awq_ref.data.cache import cache_dir
from awq_harness.awq_ref.errors import DataError

DEB_PACKAGE, UPSTREAM = "python3.11-doc", "3.11.2"
SOURCES = "usr/share/doc/python3.11/html/_sources"
SPLITS = {"eval": ("tutorial",), "calib": ("howto", "faq", "reference")}
SHA256 = {
    "eval": "b4a11e9ff71813a532c6829b20127e23e7cb8634cf71c70913dbe383dc8fbd33",
    "calib": "6a3fad2d73b29e3381b587c765a87ddde8304862d95977fab7e293e858d64dd3",
}


def pydoc_dir() -> Path:
    """The extracted splits (``eval.txt``, ``calib.txt``), fetched and extracted on first use."""
    dest = cache_dir() / "text" / f"python-doc-{UPSTREAM}"
    if not (dest / "SHA256SUMS").is_file():
        with file_lock(cache_dir() / "text" / ".python-doc.lock"):
            if not (dest / "SHA256SUMS").is_file():
                with atomic_directory(dest) as staging:
                    _extract(_fetch_deb(), staging)
    return dest


def _fetch_deb() -> Path:
    debs = cache_dir() / "debs"
    debs.mkdir(parents=True, exist_ok=True)
    found = sorted(debs.glob(f"{DEB_PACKAGE}_{UPSTREAM}-*_all.deb"))
    if found:
        return found[-1]
    cmd = ["apt-get", "download", DEB_PACKAGE]
    try:
        subprocess.run(cmd, cwd=debs, check=True, capture_output=True, text=True)
    except (OSError, subprocess.CalledProcessError) as err:
        detail = getattr(err, "stderr", "") or str(err)
        raise DataError(f"could not fetch the Python documentation with '{' '.join(cmd)}' (run 'apt-get update' "
                        f"first, or put the .deb into {debs}): {detail.strip()}") from None
    if not sorted(debs.glob(f"{DEB_PACKAGE}_{UPSTREAM}-*_all.deb")):
        raise DataError(f"apt-get download {DEB_PACKAGE} fetched no {UPSTREAM} revision into {debs}")
    return _fetch_deb()


def split_text(root: Path, sections: tuple[str, ...]) -> str:
    """The pages of ``sections`` in (section, file name) order, joined by blank lines."""
    pages = [p for s in sections for p in sorted((root / s).glob("*.rst.txt"))]
    return "\n\n".join(p.read_text(encoding="utf-8").strip() for p in pages)


def _extract(deb: Path, out: Path) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        subprocess.run(["dpkg-deb", "-x", str(deb), tmp], check=True)
        sums = []
        for split, sections in SPLITS.items():
            text = split_text(Path(tmp) / SOURCES, sections)
            digest = hashlib.sha256(text.encode()).hexdigest()
            if digest != SHA256[split]:
                raise DataError(f"{deb.name}: split {split} extracted with sha256 {digest}, expected {SHA256[split]}")
            (out / f"{split}.txt").write_text(text, encoding="utf-8")
            sums.append(f"{digest}  {split}.txt\n")
    (out / "SHA256SUMS").write_text("".join(sums))


def pydoc_split(split: str) -> str:
    return (pydoc_dir() / f"{split}.txt").read_text(encoding="utf-8")
