"""Our ``kernels`` package must not be mistaken for PyPI's ``kernels`` that transformers probes for."""
import subprocess
import sys
import textwrap
from pathlib import Path

PROBE = textwrap.dedent("""
    import importlib.util, sys, tempfile, torch
    from transformers import AutoModelForCausalLM
    from transformers.utils.import_utils import is_kernels_available
    from awq_harness.awq_ref.data.tiny import tiny_model
    spec = importlib.util.find_spec("kernels")
    print("ours" if spec and spec.origin and spec.origin.startswith(sys.argv[1]) else f"other {spec}")
    print("hub-kernels" if is_kernels_available() else "no-hub-kernels")
    with tempfile.TemporaryDirectory() as d:
        tiny_model("llama").save_pretrained(d)
        model = AutoModelForCausalLM.from_pretrained(d)
        print(tuple(model(torch.arange(5)[None]).logits.shape))
""")


def test_transformers_does_not_take_our_kernels_for_hub_kernels():
    root = str(Path(__file__).resolve().parents[2])
    proc = subprocess.run([sys.executable, "-c", PROBE, root], capture_output=True, text=True, cwd=root)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert proc.stdout.split("\n")[:3] == ["ours", "no-hub-kernels", "(1, 5, 512)"]
