"""config.json model dimensions: present ones must be positive integers of plausible size.

An absurd number (a negative head count, a hidden size of 10^12) makes loaders allocate
for ever or crash before they reach the weights.
"""
from __future__ import annotations

from awq_harness.conformance.findings import Finding, Rule

CONFIG_NUMBERS = Rule("config.numbers", "model dimensions in config.json are positive and plausible")

LIMITS = {
    "hidden_size": 1 << 17, "intermediate_size": 1 << 20, "num_hidden_layers": 4096,
    "num_attention_heads": 4096, "num_key_value_heads": 4096, "vocab_size": 1 << 24,
    "max_position_embeddings": 1 << 24, "ffn_dim": 1 << 20, "head_dim": 1 << 14,
}


def number_findings(config: dict | None) -> list[Finding]:
    if not isinstance(config, dict):
        return []
    out = []
    for key, limit in LIMITS.items():
        if key not in config or config[key] is None:
            continue
        v = config[key]
        if isinstance(v, bool) or not isinstance(v, int) or not 0 < v <= limit:
            out.append(CONFIG_NUMBERS.finding(
                f"{key} = {str(v)[:40]} is not an integer in [1, {limit}]", "config.json"))
    heads, hidden = config.get("num_attention_heads"), config.get("hidden_size")
    if (not out and isinstance(heads, int) and isinstance(hidden, int) and heads and hidden % heads
            and "head_dim" not in config):
        out.append(CONFIG_NUMBERS.finding(
            f"hidden_size {hidden} is not divisible by num_attention_heads {heads}", "config.json"))
    return out
