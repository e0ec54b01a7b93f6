"""The packages keep their layers (rules in tests/layering.py), and the checker does see a
broken rule when one is planted in a scratch tree laid out like the repository."""
from pathlib import Path

import pytest

from tests.layering import AWQ_REF_LAYERS, violations

REPO_ROOT = Path(__file__).resolve().parents[1]


def plant(root: Path, relpath: str, source: str) -> None:
    path = root / relpath
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(source)


def test_packages_keep_their_layers():
    found = violations(REPO_ROOT)
    assert not found, "\n".join(found)


def test_forbidden_import_is_reported_with_file_line_and_rule(tmp_path):
    plant(tmp_path, "awq_ref/model/_tmp_forbidden.py", '"""A planted offence."""\nfrom conformance import verify\n')
    assert violations(tmp_path) == [
        "awq_ref/model/_tmp_forbidden.py:2: awq_ref (outside awq_ref/cli) imports neither conformance nor reports: "
        "imports conformance.verify"]


@pytest.mark.parametrize("relpath,source,rule", [
    ("awq_ref/late.py", "def f():\n    import reports.collect\n", "awq_ref (outside awq_ref/cli)"),
    ("kernels/gemm.py", "from awq_ref.modules import qlinear\n", "kernels imports from awq_ref only"),
    ("kernels/dispatch.py", "import reports\n", "kernels outside kernels/bench never imports reports"),
    ("kernels/bench/x.py", "from reports.render import render_report\n", "through reports.collect only"),
    ("reports/schema.py", "from awq_ref.errors import HarnessError\n", "reports imports nothing from awq_ref"),
    ("kernels/bench/x.py", "import awq_ref.modules.qlinear as q\nq.KERNELS = 'torch'\n",
     "another harness module's globals"),
    ("golden/x.py", "from awq_ref.modules import qlinear\na, qlinear.KERNELS = 1, 2\n",
     "another harness module's globals"),
    ("awq_ref/checkpoint/gptq.py", "def f():\n    from awq_ref.methods.gptq import GptqConfig\n",
     "awq_ref.checkpoint imports only the layers below it"),
    ("awq_ref/formats/gptq.py", "from awq_ref import modules\n", "awq_ref.formats imports only the layers below"),
    ("awq_ref/model/walk.py", "from awq_ref.modules.swap import excluded\n", "awq_ref.model imports only the layers"),
    ("awq_ref/errors.py", "import awq_ref.primitives.quant\n", "awq_ref.errors imports only the layers below"),
    ("awq_ref/eval/x.py", "from ..mixed_precision import plan\n", "awq_ref.eval imports only the layers below"),
    ("awq_ref/plugins/x.py", "import torch\n", "every awq_ref sub-package has a layer"),
])
def test_each_rule_catches_its_offence(tmp_path, relpath, source, rule):
    plant(tmp_path, relpath, source)
    found = violations(tmp_path)
    assert found and all(line.startswith(f"{relpath}:") for line in found)
    assert any(rule in line for line in found), found


@pytest.mark.parametrize("relpath,source", [
    ("awq_ref/cli/report.py", "from reports.schema import load_results\n"),
    ("kernels/unpack.py", "from awq_ref.formats import layout\nfrom awq_ref.formats.awq_gemm import ORDER\n"),
    ("kernels/bench/records.py", "from reports.collect import record\n"),
    ("golden/loaders.py", "import awq.modules.linear.gemm as gemm\ngemm.TRITON_AVAILABLE = False\n"),
    ("awq_ref/data/cache.py", "from awq_ref.modules import qlinear\nqlinear.KERNELS == 'torch'\n"),
    ("awq_ref/methods/gptq.py", "from awq_ref.checkpoint.gptq import gptq_tensors\nfrom . import method\n"),
    ("awq_ref/cli/x.py", "from awq_ref.mixed_precision import plan\nfrom awq_ref.errors import HarnessError\n"),
    ("awq_ref/__init__.py", '"""The package."""\n'),
])
def test_allowed_code_passes(tmp_path, relpath, source):
    plant(tmp_path, relpath, source)
    assert violations(tmp_path) == []


def test_the_layers_place_every_sub_package_once():
    placed = [name for layer in AWQ_REF_LAYERS for name in layer]
    present = {p.name for p in (REPO_ROOT / "awq_ref").iterdir() if (p / "__init__.py").exists()} | {"errors"}
    assert len(placed) == len(set(placed)) and set(placed) == present
