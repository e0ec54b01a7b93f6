"""Which modules are quantised, and whether the config says so.

* lm_head and embeddings: vLLM awq/awq_marlin expect a float ``lm_head.weight``;
  transformers initialises a missing, untied lm_head at random.
* modules_to_not_convert (AWQ; substring match) and ignore (compressed-tensors; exact name
  or ``re:`` regex matched from the start): a listed module must stay float, and a float
  linear inside the decoder layers must be listed, or loaders expect packed tensors for it.
"""
from __future__ import annotations

import re

from awq_harness.conformance.declared import CONFIG_VALUES, Declared
from awq_harness.conformance.findings import Finding, Rule
from awq_harness.conformance.loaders import refusal
from awq_harness.conformance.moe import family_float
from awq_harness.conformance.safeheader import TensorInfo

MODULES_LM_HEAD = Rule("modules.lm-head", "lm_head and embeddings are not quantised unless declared")
MODULES_NOT_CONVERT = Rule("modules.not-convert", "modules_to_not_convert / ignore are honoured both ways")

EMBEDDING_WORDS = ("lm_head", "embed", "wte", "wpe", "word_embeddings", "output_layer")
LAYER_PATTERN = re.compile(r"(^|\.)(layers|h|blocks|decoder\.layers)\.\d+\.")
NESTED_QUANTIFIER = re.compile(r"\([^)]*[*+][^)]*\)[*+{]")
MAX_PATTERN = 200


def _regex(entry: str) -> re.Pattern | None:
    pattern = entry[3:]
    if len(pattern) > MAX_PATTERN or NESTED_QUANTIFIER.search(pattern):
        return None  # refuse patterns that can backtrack for ever
    try:
        return re.compile(pattern)
    except re.error:
        return None


def skip_matcher(decl: Declared):
    """name -> is the module excluded from quantisation by the config?"""
    if not decl.skip_is_regex:
        return lambda name: any(e in name for e in decl.skip)
    exact = {e for e in decl.skip if not e.startswith("re:")}
    patterns = [p for p in (_regex(e) for e in decl.skip if e.startswith("re:")) if p]
    return lambda name: name in exact or name.rsplit(".", 1)[-1] in exact or any(p.match(name) for p in patterns)


def _bad_patterns(decl: Declared) -> list[Finding]:
    if not decl.skip_is_regex:
        return []
    return [CONFIG_VALUES.finding(f"ignore pattern {e[:60]!r} is invalid or may backtrack without bound; not evaluated",
                                  "config.json")
            for e in decl.skip if e.startswith("re:") and _regex(e) is None]


def _float_linears(tensors: dict[str, TensorInfo]) -> list[str]:
    return sorted(n[: -len(".weight")] for n, i in tensors.items()
                  if n.endswith(".weight") and i.is_float and len(i.shape) == 2 and LAYER_PATTERN.search(n))


def _lm_head(decl: Declared, quantised: list[str], tensors: dict[str, TensorInfo],
             config: dict | None) -> list[Finding]:
    out = []
    for prefix in quantised:
        embedding = any(w in prefix.rsplit(".", 1)[-1] or prefix.endswith(w) for w in EMBEDDING_WORDS)
        if embedding and not (decl.lm_head and "lm_head" in prefix):
            out.append(refusal(MODULES_LM_HEAD, "vllm",
                               f": {prefix} is quantised but the config does not declare it, so vLLM "
                               f"expects a float {prefix}.weight; transformers misreads it: it initialises {prefix} "
                               "at random",
                               "error", None, prefix))
    tied = isinstance(config, dict) and config.get("tie_word_embeddings") is True
    has_head = "lm_head.weight" in tensors or "lm_head" in quantised
    untied = isinstance(config, dict) and config.get("tie_word_embeddings") is False
    if untied and not has_head and any(n.endswith("embed_tokens.weight") for n in tensors):
        out.append(MODULES_LM_HEAD.finding(
            "tie_word_embeddings is false but there is no lm_head.weight: transformers will "
            "initialise it at random", tensor="lm_head.weight"))
    return out if not tied else [f for f in out if f.tensor != "lm_head.weight"]


def module_findings(decl: Declared, quantised: list[str], tensors: dict[str, TensorInfo],
                    config: dict | None) -> list[Finding]:
    skipped = skip_matcher(decl)
    key = "ignore" if decl.skip_is_regex else "modules_to_not_convert"
    out = _bad_patterns(decl) + _lm_head(decl, quantised, tensors, config)
    for prefix in quantised:
        if skipped(prefix) and not (decl.lm_head and "lm_head" in prefix):
            out.append(MODULES_NOT_CONVERT.finding(
                f"matches {key} but is quantised: loaders build a float layer and find packed tensors",
                tensor=prefix))
    for prefix in _float_linears(tensors):
        if decl.format == "gptq" and family_float(prefix, config):
            continue  # MoE routers / gates: float in every GPTQ loader, the layout has no skip list
        if quantised and not skipped(prefix):
            out.append(MODULES_NOT_CONVERT.finding(
                f"float linear inside a decoder layer that is not in {key}: loaders expect packed "
                "tensors for it", tensor=prefix + ".weight"))
    return out
