"""Float layers in an AWQ checkpoint's basis: the same function, with the AWQ scales folded in.

AWQ folds per-channel scales s into each scaling group (balance weights times s, the previous
norm or linear divided by s). A linear kept in float inside a quantised layer must therefore be
the *folded* float weight W diag(s), unclipped (what AutoAWQ's ``modules_to_not_convert`` gives
inside a searched layer), or it no longer matches its quantised neighbours. A checkpoint does
not store the scales, so they are recomputed: AWQ's ``scale_only`` mode reruns the scale search
of layer i on the same calibration blocks with the same settings and folds the scales into a
copy of the float layer. The search sees the float outputs of earlier layers, never quantised
ones, so it picks the scales of the run that wrote the checkpoint (``check_same_basis``
compares the folded norms with the checkpoint's). Cost: float forwards of the calibration
blocks up to the last requested layer, plus one layer's scale search per requested layer
(no clip search, no quantisation). RTN folds nothing: its basis is the float model itself.
Which method can make such copies, and how, is the method's own (``LayerStep.float_copy``).
"""
from __future__ import annotations

import json
from pathlib import Path

import torch
from torch import nn

from awq_harness.awq_ref.checkpoint.writer import META_FILE
from awq_harness.awq_ref.errors import HarnessError
from awq_harness.awq_ref.methods.awq import AwqSearchConfig
from awq_harness.awq_ref.methods.registry import QuantizeRequest, get_method
from awq_harness.awq_ref.model.arch import decoder_layers
from awq_harness.awq_ref.pipeline.keep_step import check_keeps_float
from awq_harness.awq_ref.pipeline.quantize import method_step
from awq_harness.awq_ref.primitives.quant import QuantSpec


@torch.no_grad()
def folded_layers(model: nn.Module, method: str, tokenizer, request, indices: list[int]) -> dict[int, nn.Module]:
    """Folded float copies of the decoder layers ``indices`` of float ``model`` (left unchanged):
    the method's step walks the float layers (``keep``) and makes each copy (``float_copy``)."""
    record = get_method(method)
    check_keeps_float(record, "linear-group sensitivity")
    if not indices:
        return {}
    step, layers, folded = method_step(record, request, tokenizer), decoder_layers(model), {}
    step.begin(model)
    for i in range(max(indices) + 1):
        if i in indices:
            folded[i] = step.float_copy(model, i, layers[i])
        step.keep(model, i, layers[i])
    return folded


def checkpoint_request(checkpoint: str | Path):
    """The method and QuantizeRequest recorded in an awq-harness checkpoint's ``awq_harness.json``."""
    path = Path(checkpoint) / META_FILE
    try:
        meta = json.loads(path.read_text())
        req = meta["request"]
        request = QuantizeRequest(QuantSpec(**req["spec"]), req["version"], req["calib_samples"], req["seqlen"],
                                  req["seed"], awq=AwqSearchConfig(**req["awq"]))
    except (OSError, ValueError, KeyError, TypeError) as err:
        raise HarnessError(f"{path}: cannot read how the checkpoint was made ({err}); linear-group "
                           f"sensitivity needs a checkpoint written by 'awq-harness quantize'") from None
    return meta["method"], request


def check_same_basis(folded: dict[int, nn.Module], quantized: nn.Module) -> None:
    """The refolded norms must equal the checkpoint's (stored in fp16), or the rerun chose other scales."""
    q_layers = decoder_layers(quantized)
    for i, layer in folded.items():
        stored = dict(q_layers[i].named_parameters())
        for name, p in layer.named_parameters():
            if p.dim() == 1 and "norm" in name and name in stored:
                if not torch.allclose(p.half().float(), stored[name].float(), rtol=2e-3, atol=1e-6):
                    raise HarnessError(f"layer {i} {name}: rerunning the scale search does not reproduce the "
                                       f"checkpoint's folded norm (other settings, machine or thread count?)")
