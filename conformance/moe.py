"""Mixture-of-experts checkpoints: the experts as the declared loaders read them.

Which names a family's loaders read is family knowledge (``awq_ref.model.arch.MOE_LAYOUTS``):
Mixtral ``block_sparse_moe.experts.<e>.w1|w2|w3`` with router ``block_sparse_moe.gate``;
Qwen2-MoE / Qwen3-MoE ``mlp.experts.<e>.gate_proj|up_proj|down_proj`` with router ``mlp.gate``
(Qwen2-MoE also ``mlp.shared_expert.*`` and its gate ``mlp.shared_expert_gate``). transformers 4.51
builds one linear per expert from exactly these names; transformers 5 merges them into fused 3-D
parameters on load (``experts.gate_up_proj`` / ``experts.down_proj``), and vLLM's loaders map the
same per-expert names. A name neither line knows is not loaded: transformers leaves that expert
randomly initialised (it warns), vLLM refuses.

Rules:
  moe.experts-complete  every expert of a layer has all of the family's linears, each in one
                        format (float weight, or the packed tensors of the checkpoint's layout)
  moe.expert-count      each MoE layer holds as many experts as the config says
  moe.router-float      routers and shared-expert gates are float (loaders build them as float
                        linears; a packed router is not read)
  moe.expert-names      expert tensors use the names the loaders read (otherwise the finding names
                        the expected ones); fused 3-D expert tensors are transformers 5's in-memory
                        form, which neither 4.51 nor vLLM loads
"""
from __future__ import annotations

import re
from collections import defaultdict

from awq_harness.conformance.findings import Finding, Rule
from awq_harness.conformance.safeheader import TensorInfo

MOE_COMPLETE = Rule("moe.experts-complete", "every expert has the complete tensor set, in one format")
MOE_COUNT = Rule("moe.expert-count", "each MoE layer holds as many experts as the config declares")
MOE_ROUTER = Rule("moe.router-float", "routers and shared-expert gates are float")
MOE_NAMES = Rule("moe.expert-names", "expert tensors are named as transformers 4.51 / 5.x and vLLM read them")

EXPERT = re.compile(r"^(?P<layer>.*\.layers\.\d+)\.(?P<block>\w+)\.experts\.(?P<e>\d+)\.(?P<proj>\w+)"
                    r"\.(?P<suffix>\w+)$")
FUSED = re.compile(r"^(?P<layer>.*\.layers\.\d+)\.(?P<block>\w+)\.experts\.(?P<proj>[a-z_]+)(\.\w+)?$")
SHOWN = 3


def _layout(config: dict | None):
    from awq_harness.awq_ref.model.arch import MOE_LAYOUTS

    names = config.get("architectures") if isinstance(config, dict) else None
    names = names if isinstance(names, list) else []
    return next((MOE_LAYOUTS[n] for n in names if isinstance(n, str) and n in MOE_LAYOUTS), None)


def _experts(tensors: dict[str, TensorInfo]):
    """layer -> expert -> proj -> set of suffixes, and the block names the experts sit under."""
    found: dict[str, dict[int, dict[str, set[str]]]] = defaultdict(lambda: defaultdict(lambda: defaultdict(set)))
    blocks: dict[str, set[str]] = defaultdict(set)
    for name in tensors:
        m = EXPERT.match(name)
        if m:
            found[m["layer"]][int(m["e"])][m["proj"]].add(m["suffix"])
            blocks[m["layer"]].add(m["block"])
    return found, blocks


def _names(layout, tensors, found, blocks) -> list[Finding]:
    expected = f"{layout.block}.experts.<e>.{'|'.join(layout.experts)}"
    out = []
    fused = sorted(n for n in tensors if FUSED.match(n) and not EXPERT.match(n))
    if fused:
        out.append(MOE_NAMES.finding(
            f"{len(fused)} fused expert tensors ({', '.join(fused[:SHOWN])}): transformers 5's in-memory form; "
            f"transformers 4.51 and vLLM read one linear per expert: {expected}", tensor=fused[0]))
    for layer in sorted(found):
        projs = {p for per in found[layer].values() for p in per}
        wrong = sorted(projs - set(layout.experts)) + sorted(b for b in blocks[layer] if b != layout.block)
        if wrong:
            out.append(MOE_NAMES.finding(
                f"experts named {', '.join(wrong)}: the loaders read {layer}.{expected}; transformers leaves "
                f"experts it cannot map randomly initialised, vLLM refuses",
                tensor=f"{layer}.{sorted(blocks[layer])[0]}"))
    return out


def _complete(layout, found) -> list[Finding]:
    out = []
    for layer, experts in sorted(found.items()):
        formats = {frozenset(s) for per in experts.values() for s in per.values()}
        for e, per in sorted(experts.items()):
            missing = [p for p in layout.experts if p not in per]
            if missing and set(per) <= set(layout.experts):
                out.append(MOE_COMPLETE.finding(f"expert {e} has no {', '.join(missing)}",
                                                tensor=f"{layer}.{layout.block}.experts.{e}"))
        if len(formats) > 1:
            shown = "; ".join(sorted("+".join(sorted(f)) for f in formats))
            out.append(MOE_COMPLETE.finding(f"experts stored in more than one format ({shown})", tensor=layer))
    return out


def _count(layout, config: dict, found) -> list[Finding]:
    declared = next((config[k] for k in layout.count_keys if isinstance(config.get(k), int)), None)
    if declared is None:
        return []
    return [MOE_COUNT.finding(f"{len(experts)} experts stored, the config declares {declared} "
                              f"({'/'.join(layout.count_keys)})", "config.json", layer)
            for layer, experts in sorted(found.items()) if len(experts) != declared]


def _routers(layout, tensors: dict[str, TensorInfo], found) -> list[Finding]:
    out = []
    gates = [layout.router] + ([layout.shared_gate] if layout.shared_gate else [])
    for layer in sorted(found):
        for gate in gates:
            prefix = f"{layer}.{layout.block}.{gate}"
            packed = [n for n in tensors if n.startswith(prefix + ".") and not tensors[n].is_float]
            if packed:
                out.append(MOE_ROUTER.finding(
                    f"{prefix} is quantised: loaders build routers and shared-expert gates as float linears "
                    f"and read {prefix}.weight; keep it float and list it in modules_to_not_convert / ignore",
                    tensor=prefix))
    return out


def family_float(prefix: str, config: dict | None) -> bool:
    """A router or shared-expert gate of the config's MoE family: float by the family's definition in
    every loader (vLLM builds them unquantised, whatever the quantisation config), so a layout with no
    skip list (GPTQ) need not declare them."""
    layout = _layout(config)
    gates = (layout.router, layout.shared_gate) if layout else ()
    return any(prefix.endswith(f".{layout.block}.{g}") for g in gates if g)


def moe_findings(tensors: dict[str, TensorInfo], config: dict | None) -> list[Finding]:
    layout = _layout(config)
    if layout is None:
        return []
    found, blocks = _experts(tensors)
    return (_names(layout, tensors, found, blocks) + _complete(layout, found) + _count(layout, config, found)
            + _routers(layout, tensors, found))
