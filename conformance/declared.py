"""What ``quantization_config`` declares, read from each tool's dialect into one shape.

AutoAWQ / GPT-QModel AWQ: quant_method "awq", bits|w_bit, group_size|q_group_size,
zero_point, version|format, modules_to_not_convert (substring semantics).
compressed-tensors: quant_method "compressed-tensors", format, config_groups.*.weights
{num_bits, symmetric, strategy, group_size}, ignore (exact names or "re:" regexes).
GPTQ: quant_method "gptq", bits, group_size, sym, desc_act, checkpoint_format|format, lm_head.
AutoRound: quant_method "auto-round", bits, group_size, sym, packing_format: "auto_round:auto_awq"
(AutoAWQ's GEMM tensors) or "auto_round:auto_gptq" (GPTQ's layout, v1 zeros). Its symmetric scheme
(``int_sym`` in auto_round/data_type/int.py, "full range", after llama.cpp) divides each group's
larger-magnitude extreme by -2^(b-1), so that extreme lands on code 0 and the scale is negative
when it is the positive one: negative scales are part of the format there (``signed_scales``).
Values of the wrong type are reported (config.values) and replaced by None.
"""
from __future__ import annotations

from dataclasses import dataclass, field, replace

from awq_harness.awq_ref.formats import AWQ_VERSIONS, compressed_tensors, gptq
from awq_harness.conformance.findings import Finding, Rule

CONFIG_QUANTIZATION = Rule("config.quantization", "quantization_config exists and names a known method and format")
CONFIG_VALUES = Rule("config.values", "bits, group size, zero point and version have valid types and values")

KNOWN_UNSUPPORTED = {"gemv_fast", "llm-awq", "marlin", "exllama", "ipex"}
MAX_GROUP = 1 << 20


@dataclass
class Declared:
    method: str | None = None
    format: str | None = None  # a name in awq_ref.formats.FORMATS: gemm | gemv | compressed-tensors | gptq
    bits: int | None = None
    group_size: int | None = None  # -1 = one group per row
    zero_point: bool | None = None
    skip: list[str] = field(default_factory=list)  # modules_to_not_convert or ignore
    skip_is_regex: bool = False
    lm_head: bool = False
    gptq_v1: bool = True
    raw_version: str | None = None
    findings: list[Finding] = field(default_factory=list)
    schemes: dict[str, "Declared"] = field(default_factory=dict)  # compressed-tensors: per config group
    targets: dict[str, list[str]] = field(default_factory=dict)  # compressed-tensors: each group's targets
    actorder: str | None = None  # compressed-tensors weights.actorder
    signed_scales: bool = False  # the dialect's symmetric scheme stores negative scales (AutoRound sym)

    def bad(self, rule: Rule, message: str, severity: str | None = None) -> None:
        self.findings.append(rule.finding(message, "config.json", severity=severity))

    def groups_of(self, module: str) -> list[str]:
        """The compressed-tensors config groups whose targets name ``module`` (none elsewhere)."""
        groups = {key: {"targets": targets} for key, targets in self.targets.items()}
        return compressed_tensors.groups_of(module, groups, self.skip)

    def actorders(self) -> dict[str, str]:
        """The activation ordering each compressed-tensors config group declares (groups without one left out)."""
        schemes = self.schemes or {"": self}
        return {key: d.actorder for key, d in schemes.items() if d.actorder}

    def for_module(self, module: str) -> "Declared":
        """What the config declares for one module: its config group's scheme when exactly one
        group targets it (compressed-tensors with several groups), else the whole config's."""
        if len(self.schemes) < 2:
            return self
        groups = self.groups_of(module)
        return self.schemes[groups[0]] if len(groups) == 1 else self


def _int(d: Declared, q: dict, *keys: str) -> int | None:
    for key in keys:
        if key in q:
            v = q[key]
            if isinstance(v, bool) or not isinstance(v, int) or not (-1 <= v <= MAX_GROUP) or v == 0:
                d.bad(CONFIG_VALUES, f"quantization_config.{key} = {str(v)[:40]} is not a plausible integer")
                return None
            return v
    d.bad(CONFIG_VALUES, f"quantization_config has none of {', '.join(keys)}")
    return None


def _bool(d: Declared, q: dict, key: str, default: bool) -> bool | None:
    v = q.get(key, default)
    if not isinstance(v, bool):
        d.bad(CONFIG_VALUES, f"quantization_config.{key} = {str(v)[:40]} is not true/false")
        return None
    return v


def _names(d: Declared, v, key: str) -> list[str]:
    if v is None:
        return []
    if not isinstance(v, list) or not all(isinstance(x, str) and len(x) < 512 for x in v):
        d.bad(CONFIG_VALUES, f"quantization_config.{key} is not a list of module names")
        return []
    return list(v)


def _awq(d: Declared, q: dict) -> None:
    d.bits = _int(d, q, "bits", "w_bit")
    d.group_size = _int(d, q, "group_size", "q_group_size")
    d.zero_point = _bool(d, q, "zero_point", True)
    version = q.get("version", q.get("format", "gemm"))
    d.raw_version = version if isinstance(version, str) else None
    v = str(version).lower()[:40]
    d.format = v if v in AWQ_VERSIONS else None
    if d.format is None:
        hint = "a layout this verifier does not read" if v in KNOWN_UNSUPPORTED else "not an AWQ version"
        d.bad(CONFIG_QUANTIZATION, f"version {v!r} is {hint}; expected one of {sorted(AWQ_VERSIONS)}")
    if str(q.get("backend", "")).lower() == "llm-awq":
        d.bad(CONFIG_QUANTIZATION,
              "backend 'llm-awq' marks llm-awq (GEMVFast) tensors, which this verifier does not read")
        d.format = None
    d.skip = _names(d, q.get("modules_to_not_convert"), "modules_to_not_convert")


def _ct_weights(d: Declared, q: dict, key: str, group) -> dict:
    weights = group.get("weights") if isinstance(group, dict) else None
    if not isinstance(weights, dict):
        d.bad(CONFIG_QUANTIZATION, f"config_groups.{str(key)[:40]} has no weights scheme")
        return {}
    fmt = group.get("format", q.get("format"))
    if fmt != "pack-quantized":
        d.bad(CONFIG_QUANTIZATION, f"format {str(fmt)[:40]!r}: only pack-quantized is verified")
    return weights


def _ct(d: Declared, q: dict) -> None:
    """Every config group is read (``schemes``, ``targets``); the first one's scheme is also the
    config's own (bits, group size, zero point), as a one-group checkpoint has it."""
    d.format = compressed_tensors.NAME
    groups = q.get("config_groups")
    if not isinstance(groups, dict) or not groups:
        d.bad(CONFIG_QUANTIZATION, "compressed-tensors config has no config_groups")
        return
    d.skip, d.skip_is_regex = _names(d, q.get("ignore"), "ignore"), True
    d.lm_head = not any(e in ("lm_head", "re:.*lm_head") for e in d.skip)
    for key, group in groups.items():
        scheme = replace(d, findings=[], schemes={}, targets={})
        _ct_scheme(scheme, q, _ct_weights(d, q, key, group))
        d.findings += scheme.findings
        d.schemes[str(key)] = scheme
        d.targets[str(key)] = _names(d, group.get("targets") if isinstance(group, dict) else None,
                                     f"config_groups.{str(key)[:40]}.targets")
    status = q.get("quantization_status", "compressed")
    if status != "compressed":
        d.bad(CONFIG_QUANTIZATION, f"quantization_status {str(status)[:20]!r}: packed tensors need 'compressed'")
    first = next(iter(d.schemes.values()))
    d.bits, d.group_size, d.zero_point, d.actorder = first.bits, first.group_size, first.zero_point, first.actorder


def _ct_scheme(d: Declared, q: dict, w: dict) -> None:
    if not w:
        return
    d.bits = _int(d, w, "num_bits")
    sym = _bool(d, w, "symmetric", True)
    d.zero_point = None if sym is None else not sym
    strategy = w.get("strategy")
    if strategy == "channel":
        d.group_size = -1
    elif strategy == "group":
        d.group_size = _int(d, w, "group_size")
    else:
        d.bad(CONFIG_VALUES, f"weights.strategy {str(strategy)[:20]!r}: expected 'group' or 'channel'")
    if w.get("type", "int") != "int":
        d.bad(CONFIG_VALUES, f"weights.type {str(w.get('type'))[:20]!r}: expected 'int'")
    d.actorder = w.get("actorder") if isinstance(w.get("actorder"), str) else None


def _gptq(d: Declared, q: dict) -> None:
    d.format = gptq.NAME
    d.bits = _int(d, q, "bits")
    d.group_size = _int(d, q, "group_size")
    sym = _bool(d, q, "sym", True)
    d.zero_point = None if sym is None else not sym
    fmt = str(q.get("checkpoint_format", q.get("format", "gptq"))).lower()
    if fmt not in ("gptq", "gptq_v2"):
        d.bad(CONFIG_QUANTIZATION, f"GPTQ checkpoint_format {fmt[:20]!r}: expected 'gptq' or 'gptq_v2'")
    d.gptq_v1 = fmt != "gptq_v2"
    d.lm_head = q.get("lm_head") is True
    if q.get("desc_act") is True:
        d.bad(CONFIG_QUANTIZATION, "desc_act (act-order) checkpoints are checked with g_idx as given", "info")


AUTO_ROUND_PACKINGS = {"auto_round:auto_awq": AWQ_VERSIONS[0], "auto_round:auto_gptq": gptq.NAME}


def _auto_round(d: Declared, q: dict) -> None:
    d.bits = _int(d, q, "bits")
    d.group_size = _int(d, q, "group_size")
    sym = _bool(d, q, "sym", True)
    d.zero_point = None if sym is None else not sym
    d.signed_scales = sym is True  # int_sym: the larger-magnitude extreme sits on code 0, its scale signed
    packing = str(q.get("packing_format"))[:40]
    d.format = AUTO_ROUND_PACKINGS.get(packing)
    d.raw_version = AWQ_VERSIONS[0] if d.format == AWQ_VERSIONS[0] else None
    if d.format is None:
        d.bad(CONFIG_QUANTIZATION, f"AutoRound packing_format {packing!r} is not one of {sorted(AUTO_ROUND_PACKINGS)}")


READERS = {"awq": _awq, "compressed-tensors": _ct, "gptq": _gptq, "auto-round": _auto_round}


def read_declared(config: dict | None) -> Declared:
    d = Declared()
    if config is None:
        return d
    q = config.get("quantization_config")
    if not isinstance(q, dict):
        d.bad(CONFIG_QUANTIZATION,
              "config.json has no quantization_config object: loaders will treat the model as unquantised")
        return d
    d.method = q.get("quant_method") if isinstance(q.get("quant_method"), str) else None
    reader = READERS.get((d.method or "").lower())
    if reader is None:
        d.bad(CONFIG_QUANTIZATION,
              f"quant_method {str(q.get('quant_method'))[:40]!r} is not one of {sorted(READERS)}")
        return d
    reader(d, q)
    return d
