"""AWQ over a whole model for the tests: the method's step driven by the pipeline's layer loop."""
from awq_harness.awq_ref.methods.awq import AwqResult, AwqSearchConfig, AwqStep
from awq_harness.awq_ref.methods.registry import QuantizeRequest
from awq_harness.awq_ref.pipeline.quantize import run_step


def run_awq(model, calib_ids, spec, cfg: AwqSearchConfig | None = None, mode: str = "fake",
            version: str = "gemm", keep_tensors: bool = False) -> AwqResult:
    """AWQ on ``model`` in place (``mode``: fake, real or scale_only); the step's record."""
    step = AwqStep(QuantizeRequest(spec, version, awq=cfg or AwqSearchConfig()), calib_ids, mode, keep_tensors)
    run_step(model, step)
    return step.result
