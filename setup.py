"""The one import name: the repository's five top-level folders installed as ``awq_harness.<folder>``
(awq_harness/__init__.py says how the same imports work in a checkout). Everything else is in
pyproject.toml; setuptools cannot list mapped packages there without naming every sub-package."""
from setuptools import find_packages, setup

FOLDERS = ("awq_ref", "kernels", "conformance", "golden", "reports")
found = find_packages(include=[p for f in FOLDERS for p in (f, f + ".*")])
setup(packages=["awq_harness"] + [f"awq_harness.{p}" for p in found],
      package_dir={"awq_harness": "awq_harness", **{f"awq_harness.{f}": f for f in FOLDERS}})
