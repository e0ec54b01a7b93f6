"""Target runtime profiles: per runtime, which kernel each linear gets at each tensor-parallel
size and device, or whether the runtime refuses or misreads it (``verify --target``).

One module per runtime (``vllm``, ``transformers``, ``sglang``, ``tgi``), each a set of rules read from
that runtime's loader code, each rule with the file and function it comes from; ``shapes``
shards the layers as the runtimes do; ``matrix`` builds the matrix, its findings and its
JSON section; ``render`` prints it. A target is ``NAME`` or ``NAME@VERSION`` where a runtime's
rules changed between versions (``vllm@0.31``: Marlin without tile padding).
"""
from __future__ import annotations

from types import ModuleType

from awq_harness.awq_ref.errors import HarnessError
from awq_harness.conformance.runtimes import sglang, tgi, transformers, vllm

RUNTIMES: dict[str, ModuleType] = {m.NAME: m for m in (vllm, transformers, sglang, tgi)}
DEVICES = ("sm75", "sm80", "sm86", "sm89", "sm90", "cpu")
TP_SIZES = (1, 2, 4, 8)
DEFAULT_DEVICES = ("sm80", "sm90", "cpu")


def parse_target(text: str) -> tuple[ModuleType, str]:
    name, _, version = text.strip().partition("@")
    runtime = RUNTIMES.get(name.lower())
    if runtime is None:
        raise HarnessError(f"--target {text}: unknown runtime (known: {', '.join(RUNTIMES)})")
    version = version or runtime.VERSIONS[0]
    if version not in runtime.VERSIONS:
        raise HarnessError(f"--target {text}: {name} profiles exist for {', '.join(runtime.VERSIONS)}")
    return runtime, version


def parse_tps(text: str) -> tuple[int, ...]:
    try:
        tps = tuple(int(x) for x in text.split(","))
    except ValueError:
        raise HarnessError(f"--tp {text}: a comma-separated list of positive integers") from None
    if not tps or any(t < 1 or t > 1024 for t in tps):
        raise HarnessError(f"--tp {text}: a comma-separated list of positive integers")
    return tps


def parse_devices(text: str) -> tuple[str, ...]:
    devices = tuple(x.strip().lower() for x in text.split(","))
    bad = [d for d in devices if d not in DEVICES]
    if bad:
        raise HarnessError(f"--gpu {text}: unknown {bad[0]} (known: {', '.join(DEVICES)}; cpu = the CPU build)")
    return devices
