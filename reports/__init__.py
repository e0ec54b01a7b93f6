"""Regression reports: results schema, pytest plugin, baseline comparison, HTML rendering.

Code anywhere in the harness records results with ``reports.collect.record(section, payload)``;
the pytest plugin (``--results-json PATH``) writes them with run metadata and test outcomes;
``awq-harness report`` turns saved results files into one self-contained HTML page.
"""
