"""Real English text with no hub: six public-domain Jane Austen novels from Debian.

Provenance: Debian package ``r-cran-janeaustenr`` 1.0.0-1 (package MIT, texts public
domain, from Project Gutenberg). Its data sit in an R lazy-load database
(``data/Rdata.rdx`` index + ``Rdata.rdb`` zlib chunks); the PyPI package ``rdata`` reads
them, so R is not needed. ``apt-get download`` + ``dpkg-deb -x`` fetch and unpack the .deb
without installing it.

Splits, fixed and disjoint by book:
  * evaluation (held out): Pride and Prejudice;
  * calibration: Emma, Mansfield Park, Northanger Abbey, Persuasion, Sense and Sensibility.
Each book is its lines joined with newlines; the sha256 of every extracted text is pinned.

Text domains: ``austen`` (this corpus, the default) and ``pydoc`` (Python's documentation,
``awq_ref.data.pydoc_corpus``). ``eval_text(domain)`` and ``calibration_texts(domain)`` pick
one; ``eval --domain`` and ``quantize --calib-domain`` name it.
"""
from __future__ import annotations

import gzip
import struct
import warnings
import zlib
from pathlib import Path

from awq_harness.awq_ref.data.debian import extracted_once, fetch_deb, unpacked, write_pinned
from awq_harness.awq_ref.errors import DataError

DEB_PACKAGE, DEB_VERSION = "r-cran-janeaustenr", "1.0.0-1"
EVAL_BOOKS = ("prideprejudice",)
CALIB_BOOKS = ("emma", "mansfieldpark", "northangerabbey", "persuasion", "sensesensibility")
DATA_DIR = "usr/lib/R/site-library/janeaustenr/data"
SHA256 = {
    "emma": "dd08b340a56ad4a0a00718d5682528a5a5886ae0aef91c9e0fa528074fa64b75",
    "mansfieldpark": "e0e9ef3863ea77f51f6070062ee0dd50ad9b933223880617629e4e4963ea40ff",
    "northangerabbey": "8618a5acf5be50cc6e9b7680c7469fb6012649ab08c709dfc63c6367989fd31d",
    "persuasion": "726513a6c18bb678427bcbcf7c72d0d20816a67c25b0471b26ddcabf3ebac140",
    "prideprejudice": "2e44edaa4946d64ad541c68e0224f5d672f43bf3ce2a8a0b0637ad5e02fc6eb3",
    "sensesensibility": "0996d90842bbe8093f3b8142c1e77d1b20cff52d1d0615f3ed67733653e74e26",
}


def corpus_dir() -> Path:
    """The extracted books (``<book>.txt``), fetched and extracted on first use."""
    return extracted_once(f"janeaustenr-{DEB_VERSION}", _extract_books)


def _read_r_object(raw: bytes):
    import rdata

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return rdata.conversion.convert(rdata.parser.parse_data(raw))


def _extract_books(out: Path) -> None:
    deb = fetch_deb(DEB_PACKAGE, f"{DEB_PACKAGE}_{DEB_VERSION}_*.deb", f"{DEB_PACKAGE}={DEB_VERSION}",
                    "the text corpus")
    with unpacked(deb) as tmp:
        data = tmp / DATA_DIR
        index = _read_r_object(gzip.decompress((data / "Rdata.rdx").read_bytes()))["variables"]
        blob = (data / "Rdata.rdb").read_bytes()
    texts = {}
    for book in sorted(EVAL_BOOKS + CALIB_BOOKS):
        offset, length = (int(v) for v in index[book])
        chunk = blob[offset : offset + length]
        (size,) = struct.unpack(">I", chunk[:4])
        raw = zlib.decompress(chunk[4:])
        if len(raw) != size:
            raise DataError(f"{deb.name}: object {book} decompressed to {len(raw)} bytes, expected {size}")
        texts[book] = "\n".join(str(line) for line in _read_r_object(raw))
    write_pinned(out, texts, SHA256, deb.name)


def read_books(books: tuple[str, ...]) -> list[str]:
    folder = corpus_dir()
    return [(folder / f"{book}.txt").read_text(encoding="utf-8") for book in books]


DEFAULT_DOMAIN = "austen"
DOMAINS = {"austen": "Jane Austen's novels (held out: Pride and Prejudice)",
           "pydoc": "Python 3.11 documentation (held out: the tutorial)"}


def check_domain(domain: str) -> str:
    if domain not in DOMAINS:
        raise DataError(f"unknown text domain {domain!r}; available: {', '.join(DOMAINS)}")
    return domain


def eval_text(domain: str = DEFAULT_DOMAIN) -> str:
    """The held-out evaluation split of ``domain`` (never used for calibration)."""
    if check_domain(domain) == "pydoc":
        from awq_harness.awq_ref.data.pydoc_corpus import pydoc_split

        return pydoc_split("eval")
    return "\n\n".join(read_books(EVAL_BOOKS))


def _paragraphs(text: str) -> list[str]:
    return [p.replace("\n", " ").strip() for p in text.split("\n\n") if p.strip()]


def calibration_texts(domain: str = DEFAULT_DOMAIN) -> list[str]:
    """The calibration split: one string per paragraph (blank-line separated), in book (page) order."""
    if check_domain(domain) == "pydoc":
        from awq_harness.awq_ref.data.pydoc_corpus import pydoc_split

        return _paragraphs(pydoc_split("calib"))
    paragraphs = []
    for book in read_books(CALIB_BOOKS):
        paragraphs += _paragraphs(book)
    return paragraphs
