"""Activation-aware weight quantisation (Lin et al. 2023), written to read like the paper.

``AwqStep`` (``method``) runs the search on one decoder layer; the pipeline drives it over the model.
Modules: ``stats`` (s_X, s_W), ``scale`` (grid search), ``fold`` (exact reparametrisation),
``clip`` (clip search), ``blocks`` (loss blocks), ``driver`` (one layer), ``method`` (the step, flags
and registry record), ``config`` (every choice, recorded in checkpoint metadata), ``fakequant``
(fast quantise-dequantise).

Where the three public implementations differ, the default is AutoAWQ's:

    choice                 AutoAWQ (default here)     llm-awq HEAD          llm-compressor
    scale formula          duo x^a / (w^(1-a)+1e-4)   x^a                   duo (examples: both)
    grid                   a = i/20, i < 20           same                  identity + i/18
    clip search            yes (q/k skipped)          yes                   no  (--no-clip)
    next layer's input     float output before any scaling or quantisation       smoothed output
    v -> o group           weight shapes equal        same                  v.out == o.in
    compute dtype          fp16 forced                fp16                  model dtype
Ours: float32 or bfloat16 forwards (never float16 on CPU), statistics, candidate scales,
losses, folding and quantisation math in float32; calibration blocks counted as blocks,
not rows (``awq_ref.data.calibration``).
"""
from awq_harness.awq_ref.methods.awq.config import AwqSearchConfig
from awq_harness.awq_ref.methods.awq.driver import AwqResult
from awq_harness.awq_ref.methods.awq.method import AWQ, AwqStep

__all__ = ["AWQ", "AwqSearchConfig", "AwqResult", "AwqStep"]
