"""One cell of the runtime matrix: what a runtime does with one row of linears at one
(tensor-parallel size, device), the rule that decides it and where that rule lives in the
runtime's source.

Verdicts:

- ``loads``: the runtime's preferred kernel ``kernel`` takes the layer;
- ``fallback``: it loads, on a slower kernel ``kernel`` (the preferred one refused the shape
  or the scheme);
- ``refuses``: loading raises;
- ``misreads``: it loads and computes something other than what the file stores;
- ``unknown``: this profile has no rule for the case (said so, never guessed).

``checked`` says how the cell can be confirmed without a GPU: ``loader`` (the runtime's own
kernel-selection code runs on a CPU and the peers tests call it on the cell's partition
shapes), ``selection`` (the runtime's pure-Python shape and type functions are called with
the cell's compute capability; the kernels themselves need a GPU), ``source`` (read from the
source only: no CPU check exists).
"""
from __future__ import annotations

from dataclasses import asdict, dataclass

VERDICTS = ("loads", "fallback", "refuses", "misreads", "unknown")
CHECKS = ("loader", "selection", "source")


@dataclass(frozen=True)
class Source:
    file: str
    function: str

    def __str__(self) -> str:
        return f"{self.file} {self.function}"


@dataclass(frozen=True)
class Cell:
    verdict: str
    kernel: str | None
    rule: str
    source: Source
    why: str
    checked: str

    def short(self) -> str:
        """The cell as a table shows it."""
        if self.verdict == "loads":
            return self.kernel or "loads"
        if self.verdict == "fallback":
            return f"fallback: {self.kernel}"
        return self.verdict

    def to_dict(self) -> dict:
        d = asdict(self)
        d["source"] = str(self.source)
        return d
