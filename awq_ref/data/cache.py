"""Where built artefacts (the default model's fp16 folder, extracted text) are cached."""
from __future__ import annotations

import os
from pathlib import Path

CACHE_ENV = "AWQ_HARNESS_CACHE"


def cache_dir() -> Path:
    """``$AWQ_HARNESS_CACHE``, else ``$XDG_CACHE_HOME/awq-harness``, else ``~/.cache/awq-harness``."""
    if os.environ.get(CACHE_ENV):
        return Path(os.environ[CACHE_ENV]).expanduser()
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "awq-harness"
