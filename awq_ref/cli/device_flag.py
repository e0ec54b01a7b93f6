"""``--device auto|cpu|cuda|cuda:N``, the same flag on ``quantize``, ``eval``, ``plan`` and ``verify``
(``awq_ref.primitives.device``: ``auto`` is CUDA when torch sees a GPU; CUDA asked for where there
is none is one line and exit 2, before anything is read or written)."""
from __future__ import annotations

from awq_harness.awq_ref.primitives.device import AUTO, CHOICES


def add_device_flag(p, default: str = AUTO) -> None:
    p.add_argument("--device", default=default, metavar=CHOICES,
                   help="where layers are quantised and models run: auto = CUDA when present, else the CPU")
