"""``verify --reference``: the functional check flags a checkpoint that computes garbage even
when every tensor is well formed, and passes a healthy one."""
import json
import shutil

import pytest
from safetensors.torch import save_file

from awq_harness.awq_ref.checkpoint.awq import read_tensors
from awq_harness.awq_ref.cli import main
from awq_harness.awq_ref.data.models import default_model_dir
from awq_harness.awq_ref.formats import awq_gemm
from awq_harness.awq_ref.formats.nibbles import pack_last, unpack_last
from awq_harness.conformance import verify
from awq_harness.conformance.functional import layer_jumps


@pytest.fixture(scope="module")
def default_rtn(tmp_path_factory):
    out = tmp_path_factory.mktemp("default") / "rtn"
    assert main(["quantize", "--model", "default", "--method", "rtn", "--out", str(out)]) == 0
    return out


def _both_orders_natural(src, dst):
    """qweight AND qzeros repacked in natural order: channels move together, so no statistic
    of the tensors alone can see it (see conformance.numeric); only the function can."""
    shutil.copytree(src, dst)
    tensors = read_tensors(src)
    for name in [n for n in tensors if n.endswith((".qweight", ".qzeros"))]:
        tensors[name] = pack_last(unpack_last(tensors[name], 4, awq_gemm.ORDER), 4)
    save_file(tensors, dst / "model.safetensors", metadata={"format": "pt"})


def test_healthy_checkpoint_passes_and_broken_one_is_flagged(default_rtn, tmp_path):
    healthy = verify(default_rtn, reference=default_model_dir())
    ppl = healthy.of_rule("functional.perplexity")
    assert healthy.conforms and ppl and ppl[0].severity in ("info", "warning")
    assert 1.0 < healthy.functional["ppl_ratio"] < 1.5 and len(healthy.functional["layers"]) == 30

    _both_orders_natural(default_rtn, tmp_path / "broken")
    without_reference = verify(tmp_path / "broken")
    assert without_reference.conforms  # well formed: the tensors alone cannot tell
    broken = verify(tmp_path / "broken", reference=default_model_dir())
    (finding,) = broken.of_rule("functional.perplexity")
    assert finding.severity == "error" and "first departs from the float one at layer 0" in finding.message
    assert broken.exit_code() == 1
    assert any(f.severity == "error" for f in broken.of_rule("reference.error"))  # the weights disagree too


def test_cli_writes_the_functional_results(default_rtn, tmp_path, capsys):
    code = main(["verify", str(default_rtn), "--reference", str(default_model_dir()), "--json",
                 str(tmp_path / "r.json")])
    assert code == 0
    doc = json.loads((tmp_path / "r.json").read_text())
    assert doc["functional"]["ppl_quantized"] > doc["functional"]["ppl_reference"]
    assert "functional.perplexity" in capsys.readouterr().out


def test_layer_jump_rule():
    assert layer_jumps([0.02, 0.021, 0.019, 0.2, 0.02, 0.022]) == [3]
    assert layer_jumps([0.01, 0.011, 0.04, 0.012, 0.01]) == []  # below the 0.05 floor
