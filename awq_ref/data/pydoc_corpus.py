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

from pathlib import Path

from awq_harness.awq_ref.data.debian import extracted_once, fetch_deb, unpacked, write_pinned

DEB_PACKAGE, UPSTREAM = "python3.11-doc", "3.11.2"
SOURCES = "usr/share/doc/python3.11/html/_sources"
SPLITS = {"eval": ("tutorial",), "calib": ("howto", "faq", "reference")}
SHA256 = {
    "eval": "b4a11e9ff71813a532c6829b20127e23e7cb8634cf71c70913dbe383dc8fbd33",
    "calib": "6a3fad2d73b29e3381b587c765a87ddde8304862d95977fab7e293e858d64dd3",
}


def pydoc_dir() -> Path:
    """The extracted splits (``eval.txt``, ``calib.txt``), fetched and extracted on first use."""
    return extracted_once(f"python-doc-{UPSTREAM}", _extract)


def split_text(root: Path, sections: tuple[str, ...]) -> str:
    """The pages of ``sections`` in (section, file name) order, joined by blank lines."""
    pages = [p for s in sections for p in sorted((root / s).glob("*.rst.txt"))]
    return "\n\n".join(p.read_text(encoding="utf-8").strip() for p in pages)


def _extract(out: Path) -> None:
    deb = fetch_deb(DEB_PACKAGE, f"{DEB_PACKAGE}_{UPSTREAM}-*_all.deb", DEB_PACKAGE, "the Python documentation")
    with unpacked(deb) as tmp:
        texts = {split: split_text(tmp / SOURCES, sections) for split, sections in SPLITS.items()}
    write_pinned(out, texts, SHA256, deb.name)


def pydoc_split(split: str) -> str:
    return (pydoc_dir() / f"{split}.txt").read_text(encoding="utf-8")
