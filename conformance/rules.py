"""The named rules. Every finding the verifier emits carries one of these ids.

Each rule has a default severity and a one-line statement of what it checks; the pytest
front end turns each id into a test item. ``RULES`` is the single registry.
"""
from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Rule:
    id: str
    title: str


_RULES = [
    # files and hostile input
    Rule("file.folder", "the checkpoint folder exists, is a folder and holds tensor files"),
    Rule("file.pickle", "pickle weights (.bin/.pt) are never unpickled unless --allow-pickle, then weights_only"),
    Rule("file.outside-folder", "no file, symlink or index entry points outside the checkpoint folder"),
    Rule("file.header", "safetensors header: bounded length, valid JSON, well-formed entries"),
    Rule("file.dtype", "every tensor has a known safetensors dtype"),
    Rule("file.offsets", "tensor byte ranges lie inside the data section and do not overlap"),
    Rule("file.byte-length", "dtype x shape equals each tensor's byte length"),
    Rule("file.truncated", "the file is as long as its header says"),
    Rule("index.valid", "model.safetensors.index.json is valid JSON with a weight_map"),
    Rule("index.missing-shard", "every shard named by the index exists"),
    Rule("index.missing-tensor", "every tensor named by the index is in its shard"),
    Rule("index.extra-tensor", "every tensor in a shard is named by the index for that shard"),
    Rule("index.duplicate", "each tensor lives in exactly one shard"),
    # config
    Rule("config.present", "config.json exists and is a JSON object"),
    Rule("config.quantization", "quantization_config exists and names a known method and format"),
    Rule("config.values", "bits, group size, zero point and version have valid types and values"),
    Rule("config.numbers", "model dimensions in config.json are positive and plausible"),
    Rule("config.matches-tensors",
         "quantization_config agrees with the tensors (bits, group size, zero point, format)"),
    # structure
    Rule("format.detected", "the checkpoint format was recognised"),
    Rule("tensors.complete", "every quantised linear has its complete tensor set"),
    Rule("tensors.shape", "every quantised tensor has the shape its layout requires"),
    Rule("tensors.dtype", "every quantised tensor has the dtype its layout requires"),
    Rule("layout.divisibility", "in_features divisible by the group size, out_features by the pack factor"),
    Rule("loader.vllm", "vLLM's awq / compressed-tensors / gptq loaders accept the layers"),
    Rule("loader.marlin", "vLLM's Marlin kernels accept the layers (else a slower fallback)"),
    Rule("loader.transformers", "transformers accepts the quantization_config"),
    Rule("loader.tensor-parallel", "layers split at tensor-parallel sizes 2, 4 and 8"),
    Rule("modules.lm-head", "lm_head and embeddings are not quantised unless declared"),
    Rule("modules.not-convert", "modules_to_not_convert / ignore are honoured both ways"),
    Rule("ct.weight-shape", "compressed-tensors weight_shape equals the true [out, in]"),
    Rule("gptq.zeros", "GPTQ zero points are representable in the declared checkpoint_format"),
    # numbers
    Rule("scales.finite", "scales contain no NaN or inf"),
    Rule("scales.positive", "scales are > 0"),
    Rule("scales.tiny", "scales are not all vanishingly small"),
    Rule("scales.fp16-range", "scales fit fp16 (the vLLM awq path runs in fp16)"),
    Rule("zeros.range", "zero points lie in [0, 2^bits - 1]"),
    Rule("floats.finite", "float tensors (embeddings, norms, lm_head, bias) contain no NaN or inf"),
    Rule("numeric.zero-offset", "codes are centred on their zero point (catches zeros off by one)"),
    Rule("numeric.code-zero-coherence", "group code means track the zeros (catches a wrong nibble order)"),
    Rule("numeric.zero-filled", "packed code tensors are not zero-filled"),
    Rule("reference.error", "per-layer reconstruction error against the float reference"),
    Rule("reference.missing", "the reference has a float weight of the right shape for every quantised layer"),
    Rule("functional.perplexity",
         "with --reference: perplexity of the quantised model within a ratio of the float one"),
    Rule("functional.layer-jump", "with --reference: no layer's hidden-state error jumps against its neighbours"),
    Rule("functional.skipped", "with --reference: the functional check could not run (format or model not supported)"),
    Rule("verifier.internal", "the verifier itself failed on this input (a bug: please report)"),
]

RULES: dict[str, Rule] = {r.id: r for r in _RULES}
