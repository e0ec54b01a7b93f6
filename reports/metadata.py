"""Run metadata for the results file: commit, date, host, device and library versions."""
from __future__ import annotations

import os
import platform
import re
import socket
import subprocess
import sys
from datetime import datetime, timezone
from importlib import metadata
from pathlib import Path
from typing import Any

VERSIONED_PACKAGES = ("torch", "triton", "transformers", "pytest-benchmark")


def run_metadata(root: str | os.PathLike) -> dict[str, Any]:
    commit, dirty = git_state(Path(root))
    return {
        "date": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "git_commit": commit,
        "git_dirty": dirty,
        "host": socket.gethostname(),
        "device": device_name(),
        "versions": library_versions(),
    }


def git_state(root: Path) -> tuple[str | None, bool | None]:
    """(commit, has uncommitted changes) read with git, or CI's GITHUB_SHA without git."""
    commit = _git(root, "rev-parse", "HEAD")
    if commit is None:
        return os.environ.get("GITHUB_SHA"), None
    status = _git(root, "--no-optional-locks", "status", "--porcelain", "--untracked-files=no")
    return commit, bool(status) if status is not None else None


def _git(root: Path, *args: str) -> str | None:
    try:
        done = subprocess.run(["git", "-C", str(root), *args], capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.TimeoutExpired):
        return None
    return done.stdout.strip() if done.returncode == 0 else None


def library_versions() -> dict[str, str | None]:
    versions: dict[str, str | None] = {"python": platform.python_version()}
    for name in VERSIONED_PACKAGES:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = None
    versions["cuda"] = _torch_cuda_version()
    return versions


def device_name() -> str:
    """The CUDA device's name when torch (already loaded by the run) sees one, else the CPU."""
    torch = sys.modules.get("torch")
    if torch is not None and torch.cuda.is_available():
        return torch.cuda.get_device_name(0)
    return f"cpu ({platform.processor() or platform.machine()}, {os.cpu_count()} cores)"


def _torch_cuda_version() -> str | None:
    torch = sys.modules.get("torch")
    return getattr(getattr(torch, "version", None), "cuda", None)


def device_slug(device: str) -> str:
    """The GPU name as a file-name and cache-key word: lower case, each run of characters other
    than a letter or digit one ``-`` ("NVIDIA A10" -> "nvidia-a10", "NVIDIA H100 80GB HBM3" ->
    "nvidia-h100-80gb-hbm3"). Per-GPU baselines and the CI cache keys are named by it."""
    slug = re.sub(r"[^a-z0-9]+", "-", device.lower()).strip("-")
    if not slug:
        raise ValueError(f"device name {device!r} has no letter or digit to name a baseline by")
    return slug
