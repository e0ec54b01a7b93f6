"""A step for weight-only baselines quantised by a third-party library, for evaluation only.

Such a method fake-quantises: every linear of the decoder layer gets the library's
dequantised weight (quantise, then dequantise, in float32), so it runs through the same layer
loop and the same evaluation as AWQ, GPTQ and RTN. It writes no checkpoint: the libraries'
own layouts are not formats this harness reads (``Method.formats`` is empty).
"""
from __future__ import annotations

from typing import Callable

import torch

from awq_harness.awq_ref.errors import HarnessError
from awq_harness.awq_ref.methods.method import LayerStep
from awq_harness.awq_ref.model.arch import layer_prefix, linears_in
from awq_harness.awq_ref.modules.swap import LinearError, relative_error

FakeQuant = Callable[[torch.Tensor, object], torch.Tensor]  # (float32 weight [out, in], QuantSpec) -> W_hat


def require(module: str, method: str):
    """Import a baseline's library, or a one-line error saying how to install it."""
    import importlib
    import logging

    previous = logging.root.manager.disable
    logging.disable(logging.WARNING)  # bitsandbytes warns about optional CPU kernels it does not need here
    try:
        return importlib.import_module(module)
    except ImportError as err:
        raise HarnessError(f"method {method} needs {module.split('.')[0]} ({err}); "
                           f"install the project's 'baselines' extra: pip install -e '.[baselines]'") from None
    finally:
        logging.disable(previous)


class WeightOnlyStep(LayerStep):
    def __init__(self, request, fake_quant: FakeQuant):
        if request.version is not None:
            raise ValueError(f"fake-quantises only (no checkpoint format), not {request.version!r}")
        self.request, self.fake_quant = request, fake_quant

    @torch.no_grad()
    def quantize(self, model, index, layer):
        errors = []
        for name, linear in linears_in(layer).items():
            w = linear.weight.detach()
            w_hat = self.fake_quant(w.float().contiguous(), self.request.spec).reshape(w.shape)
            errors.append(LinearError(f"{layer_prefix(model)}.{index}.{name}", relative_error(w, w_hat)))
            linear.weight.copy_(w_hat.to(w.dtype))
        return errors
