"""AWQ as a harness method: its layer step, its flags and its registry record.

The step runs ``driver.awq_layer`` on each decoder layer with the float output of the previous
layer as input (llm-awq / AutoAWQ: no error propagation), so a layer kept in float only
advances the hidden states by its float forward. A linear kept in float inside a quantised
layer must be in that layer's AWQ basis: ``float_copy`` runs the same scale search on a copy
(``scale_only``: scales folded, no clip, no quantisation) with the same inputs.
"""
from __future__ import annotations

import copy
import time
from dataclasses import replace

import torch

from awq_harness.awq_ref.methods.awq.config import AwqSearchConfig
from awq_harness.awq_ref.methods.awq.driver import MODES, AwqResult, awq_layer
from awq_harness.awq_ref.methods.method import CalibratedStep, Method
from awq_harness.awq_ref.model.walk import run_layer


class AwqStep(CalibratedStep):
    """``mode``: fake, real or scale_only (``driver``); default fake for version None, else real.
    ``keep_tensors`` keeps every group's scales and every clip in ``result``."""

    def __init__(self, request, calib_ids: torch.Tensor, mode: str | None = None, keep_tensors: bool = False):
        super().__init__(calib_ids, request.awq.torch_dtype)
        self.mode = mode or ("fake" if request.version is None else "real")
        if self.mode not in MODES:
            raise ValueError(f"mode must be one of {MODES}, got {self.mode!r}")
        self.request, self.keep_tensors, self.result = request, keep_tensors, AwqResult()
        self.started = time.perf_counter()

    def begin(self, model):
        self.started = time.perf_counter()
        super().begin(model)

    def quantize(self, model, index, layer):
        before = len(self.result.errors)
        self.hidden = awq_layer(layer, model, self.hidden, self.kwargs, self.request.spec, self.request.awq,
                                self.mode, self.request.version or "gemm", index, self.result, self.keep_tensors)
        self.result.seconds = time.perf_counter() - self.started
        return self.result.errors[before:]

    def keep(self, model, index, layer):
        with torch.no_grad():
            self.hidden = run_layer(copy.deepcopy(layer).to(self.dtype), self.hidden, self.kwargs)

    def float_copy(self, model, index, layer):
        folded = copy.deepcopy(layer)
        awq_layer(folded, model, self.hidden, self.kwargs, self.request.spec, self.request.awq, "scale_only",
                  self.request.version or "gemm", index, AwqResult(), False)
        return folded


class AwqOptions:
    def add_flags(self, g) -> None:
        g.add_argument("--n-grid", type=int, default=AwqSearchConfig.n_grid, help="AWQ scale grid points")
        g.add_argument("--no-duo-scaling", action="store_true", help="AWQ plain s = x^a (llm-awq) instead of duo")
        g.add_argument("--no-clip", action="store_true", help="skip AWQ's clip search (as llm-compressor)")
        g.add_argument("--loss-blocks", type=int, default=None, metavar="N",
                       help="AWQ scale-search loss on N evenly spaced calibration blocks (default: all, as "
                            "AutoAWQ); statistics and clip search still use every block")

    def configure(self, request, args, dtype: str):
        return replace(request, awq=AwqSearchConfig(n_grid=args.n_grid, duo_scaling=not args.no_duo_scaling,
                                                    clip=not args.no_clip, compute_dtype=dtype,
                                                    loss_blocks=args.loss_blocks))


AWQ = Method("awq", AwqStep, calibrated=True, keeps_float=True, options=AwqOptions())
