"""awq-harness's one import name: ``awq_harness.awq_ref``, ``awq_harness.kernels``,
``awq_harness.conformance``, ``awq_harness.golden``, ``awq_harness.reports``.

The repository keeps these five as top-level folders; the wheel installs them under this
package (setup.py maps them), so the distribution claims no generic top-level name (Hugging
Face's ``kernels``, other projects' ``reports``). In a checkout (editable install or
``PYTHONPATH=.``) the repository root joins this package's ``__path__``, so the same imports
find the folders where they are.
"""
from pathlib import Path as _Path

FOLDERS = ("awq_ref", "kernels", "conformance", "golden", "reports")

_here = _Path(__file__).resolve().parent
_checkout = _here.parent
if not (_here / "awq_ref").is_dir() and (_checkout / "pyproject.toml").is_file() \
        and (_checkout / "awq_ref" / "__init__.py").is_file():
    __path__.append(str(_checkout))  # noqa: F821 - a package's __path__
