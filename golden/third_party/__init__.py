"""Checkpoints written by third-party tools on this CPU, committed as test vectors.

Each folder holds ``checkpoint/`` exactly as the tool wrote it, ``expected.safetensors`` (the
tool's own dequantised weights ``dequantized.<module>`` and its ``logits`` on
``TOKEN_IDS``) and ``provenance.json`` (tool, versions, the command that made it).
They are made by ``golden/third_party/make.py`` inside the tool's environment (tox envs
``peers``); the default test run only reads them.
"""
from pathlib import Path

ROOT = Path(__file__).resolve().parent
EXPECTED, PROVENANCE = "expected.safetensors", "provenance.json"
TOKEN_IDS = list(range(1, 33))


CHECKPOINT = "checkpoint"


def checkpoint(name: str) -> Path:
    return ROOT / name / CHECKPOINT


def names() -> list[str]:
    return sorted(p.name for p in ROOT.iterdir() if (p / PROVENANCE).is_file())
