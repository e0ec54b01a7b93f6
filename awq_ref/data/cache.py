"""Where built artefacts (the default model's fp16 folder, extracted text) are cached."""
from __future__ import annotations

import os
from pathlib import Path

from awq_harness.awq_ref.errors import HarnessError

CACHE_ENV = "AWQ_HARNESS_CACHE"


def cache_dir() -> Path:
    """``$AWQ_HARNESS_CACHE``, else ``$XDG_CACHE_HOME/awq-harness``, else ``~/.cache/awq-harness``."""
    if os.environ.get(CACHE_ENV):
        return Path(os.environ[CACHE_ENV]).expanduser()
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "awq-harness"


REMOTE_CACHE_ENV = "AWQ_HARNESS_REMOTE_CACHE"
REMOTE_CACHE_BYTES_ENV = "AWQ_HARNESS_REMOTE_CACHE_BYTES"
REMOTE_CACHE_DEFAULT_BYTES = 10 * 1024**3


def remote_cache_dir() -> Path:
    """Byte ranges fetched from remote checkpoints: ``$AWQ_HARNESS_REMOTE_CACHE``, else ``remote/`` in cache_dir()."""
    if os.environ.get(REMOTE_CACHE_ENV):
        return Path(os.environ[REMOTE_CACHE_ENV]).expanduser()
    return cache_dir() / "remote"


def remote_cache_bytes() -> int:
    """The remote cache's size bound, ``$AWQ_HARNESS_REMOTE_CACHE_BYTES`` (0: no cache); 10 GiB by default."""
    raw = os.environ.get(REMOTE_CACHE_BYTES_ENV, "").strip()
    if not raw:
        return REMOTE_CACHE_DEFAULT_BYTES
    if not raw.isdigit():
        raise HarnessError(f"{REMOTE_CACHE_BYTES_ENV}={raw[:40]!r}: not a whole number of bytes")
    return int(raw)
