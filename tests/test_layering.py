"""The packages keep their layers (rules in tests/layering.py), and the checker does see a
broken rule when one is planted in a scratch tree laid out like the repository."""
from pathlib import Path

import pytest

from tests.layering import violations

REPO_ROOT = Path(__file__).resolve().parents[1]


def plant(root: Path, relpath: str, source: str) -> None:
    path = root / relpath
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(source)


def test_packages_keep_their_layers():
    found = violations(REPO_ROOT)
    assert not found, "\n".join(found)


def test_forbidden_import_is_reported_with_file_line_and_rule(tmp_path):
    plant(tmp_path, "awq_ref/_tmp_forbidden.py", '"""A planted offence."""\nfrom conformance import verify\n')
    assert violations(tmp_path) == [
        "awq_ref/_tmp_forbidden.py:2: awq_ref (outside awq_ref/cli) imports neither conformance nor reports: "
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
])
def test_each_rule_catches_its_offence(tmp_path, relpath, source, rule):
    plant(tmp_path, relpath, source)
    found = violations(tmp_path)
    assert found and all(line.startswith(f"{relpath}:") for line in found)
    assert any(rule in line for line in found), found


@pytest.mark.parametrize("relpath,source", [
    ("awq_ref/cli/report.py", "from reports.schema import load_results\n"),
    ("kernels/unpack.py", "from awq_ref.formats import layout\nfrom awq_ref.primitives.quant import QuantSpec\n"),
    ("kernels/bench/records.py", "from reports.collect import record\n"),
    ("golden/loaders.py", "import awq.modules.linear.gemm as gemm\ngemm.TRITON_AVAILABLE = False\n"),
    ("awq_ref/data/cache.py", "from awq_ref.modules import qlinear\nqlinear.KERNELS == 'torch'\n"),
])
def test_allowed_code_passes(tmp_path, relpath, source):
    plant(tmp_path, relpath, source)
    assert violations(tmp_path) == []
