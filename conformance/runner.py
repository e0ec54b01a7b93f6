"""``verify(path)``: run every rule over a checkpoint folder and return a ``Report``.

Order: files and headers (nothing is mapped before its header passed), config, layout
detection, per-layer structure, loader and module policy, then the numeric rules streamed
one layer at a time, float tensors in chunks, and the reference comparison if asked.
Any unexpected exception becomes a ``verifier.internal`` finding, never a traceback.
"""
from __future__ import annotations

import sys
import threading
from contextlib import contextmanager
from pathlib import Path

import torch

from awq_harness.awq_ref.formats import AWQ_VERSIONS, compressed_tensors
from awq_harness.conformance import decode, numeric
from awq_harness.conformance.config_rules import number_findings
from awq_harness.conformance.ct_fields import ct_field_findings
from awq_harness.conformance.declared import Declared, read_declared
from awq_harness.conformance.findings import Finding, Report, Rule
from awq_harness.conformance.fold_consistency import REFERENCE_FOLD
from awq_harness.conformance.folder import Folder, open_folder
from awq_harness.conformance.functional import FUNCTIONAL_SKIPPED
from awq_harness.conformance.loaders import head_findings, loader_findings
from awq_harness.conformance.modules import module_findings
from awq_harness.conformance.moe import moe_findings
from awq_harness.conformance.reader import SAFETENSORS_NAMES, TensorReader
from awq_harness.conformance.reference import REFERENCE_ERROR
from awq_harness.conformance.remote import RemoteError, RemoteFiles, is_remote
from awq_harness.conformance.safeheader import FILE_FOLDER, FILE_TRUNCATED, TensorInfo
from awq_harness.conformance.structure import TENSORS_COMPLETE, Layer, check_layer, choose_layout, group_by_prefix

FILE_PICKLE = Rule("file.pickle",
                   "pickle weights (.bin/.pt) are never unpickled unless --allow-pickle, then weights_only")
FORMAT_DETECTED = Rule("format.detected", "the checkpoint format was recognised", "info")
CT_WEIGHT_SHAPE = Rule("ct.weight-shape", "compressed-tensors weight_shape equals the true [out, in]")
VERIFIER_INTERNAL = Rule("verifier.internal", "the verifier itself failed on this input (a bug: please report)")

AUTO_PROGRESS_BYTES = 1 << 30
# remote: the plausibility sample spans fewer groups; in AutoAWQ GEMM and GPTQ layouts every sampled
# group is a band of whole rows of the packed tensor, which is what a range request fetches
REMOTE_SAMPLE_GROUPS = 2
PREFETCH_BYTES = 512 << 20


def _load_pickles(folder: Folder, allow: bool) -> dict[str, torch.Tensor]:
    if not allow:
        names = ", ".join(p.name for p in folder.pickled[:3])
        folder.add(FILE_PICKLE, "error",
                   f"only pickle weights ({names}); refusing to unpickle untrusted files (rerun with --allow-pickle "
                   "to load them with weights_only)")
        return {}
    memory = {}
    for path in folder.pickled:
        try:
            state = torch.load(path, map_location="cpu", weights_only=True, mmap=True)
        except Exception as err:  # noqa: BLE001 - any failure of an untrusted pickle is a finding
            folder.add(FILE_PICKLE, "error", f"weights_only load failed: {str(err)[:120]}", path.name)
            continue
        if not isinstance(state, dict):
            folder.add(FILE_PICKLE, "error", "does not hold a state dict", path.name)
            continue
        for name, t in state.items():
            if isinstance(name, str) and isinstance(t, torch.Tensor) and t.dtype in SAFETENSORS_NAMES:
                memory[name] = t
                folder.tensors[name] = TensorInfo(name, path, SAFETENSORS_NAMES[t.dtype], tuple(t.shape), 0,
                                                  t.numel() * t.element_size())
    return memory


def _ct_values(folder: Folder, reader: TensorReader, report: Report) -> dict[str, dict]:
    values = {}
    for name, info in folder.tensors.items():
        if not name.endswith(".weight_shape") or info.shape != (2,) or info.dtype not in ("I64", "I32"):
            continue
        prefix = name[: -len(".weight_shape")]
        n, k = (int(v) for v in reader.get(info).tolist())
        packed = folder.tensors.get(prefix + ".weight_packed")
        if packed is None or len(packed.shape) != 2:
            continue
        words = {(n, -(-k // compressed_tensors.per_word(b))) for b in compressed_tensors.PACKED_BITS}
        if not (0 < n < 1 << 31 and 0 < k < 1 << 31) or packed.shape not in words:
            report.findings.append(CT_WEIGHT_SHAPE.finding(
                f"weight_shape [{n}, {k}] does not match weight_packed "
                f"{list(packed.shape)}: loaders would crop or pad the weight wrongly",
                info.path.name, name))
            continue
        values[prefix] = {"weight_shape": (n, k)}
    return values


def _layers(folder: Folder, decl: Declared, values: dict, report: Report) -> list[Layer]:
    layout, found = choose_layout(decl, folder.tensors, values)
    report.findings += found
    groups = group_by_prefix(folder.tensors, layout.PACKED) if layout else {}
    if not groups:  # a declared layout with no packed tensors at all is a float model, not a quantised one
        severity = "error" if decl.method else "warning"
        declared = f" although the config declares {layout.NAME}" if layout else ""
        report.findings.append(FORMAT_DETECTED.finding(
            "no quantised layers (no qweight / weight_packed tensors) found" + declared, severity=severity))
        report.findings += _orphans(folder.tensors, layout, groups) if layout else []
        return []
    report.format = layout.NAME
    good = []
    for prefix in sorted(groups):
        if layout.VALUES and prefix not in values:
            report.findings += _missing_values(prefix, layout, report.findings)
            continue
        layer, found = check_layer(prefix, layout, groups[prefix], values.get(prefix, {}), decl)
        report.findings += found
        good += [layer] if layer else []
    report.findings += _orphans(folder.tensors, layout, groups)
    report.findings.append(FORMAT_DETECTED.finding(
        f"{layout.NAME}: {len(groups)} quantised layers, {len(good)} well formed"))
    return good


def _missing_values(prefix: str, layout, findings: list[Finding]) -> list[Finding]:
    """A layer whose value tensors (weight_shape) were absent or already reported malformed."""
    tensors = [f"{prefix}.{s}" for s in layout.VALUES]
    if any(f.rule == CT_WEIGHT_SHAPE.id and f.tensor in tensors for f in findings):
        return []
    return [TENSORS_COMPLETE.finding(f"missing or malformed {s}", tensor=f"{prefix}.{s}")
            for s in layout.VALUES]


def _orphans(tensors: dict[str, TensorInfo], layout, groups: dict) -> list[Finding]:
    """Quantisation tensors whose layer has no packed codes at all."""
    parts = set(layout.DTYPES) - {layout.PACKED}
    return [TENSORS_COMPLETE.finding(f"{suffix} without {layout.PACKED}: a partial layer", info.path.name, name)
            for name, info in sorted(tensors.items())
            for prefix, _, suffix in [name.rpartition(".")] if suffix in parts and prefix not in groups]


def _numeric_layer(layer: Layer, reader: TensorReader, decl: Declared) -> list[Finding]:
    packed = layer.layout.PACKED
    t = {s: reader.get(i, fetch=s != packed) for s, i in layer.infos.items()}
    groups = REMOTE_SAMPLE_GROUPS if reader.remote is not None else decode.SAMPLE_GROUPS
    # remote: the sampled block, or every code of an act-order layer (its sample is decoded whole)
    whole = decode.group_index(layer, t) is not None
    reader.fetch_view(layer.infos[packed], t[packed] if whole else decode.sample_slices(layer, t, groups)[packed])
    s, z = decode.scales_zeros(layer, t, decl.gptq_v1)
    out = numeric.check_scales(layer, s, z, layer.layout.SCALES, decl.for_module(layer.prefix).signed_scales)
    out += numeric.check_zeros(layer, z, t.get("weight_zero_point"), decl.gptq_v1)
    out += numeric.check_symmetric(layer, z, decl.zero_point)
    sample = decode.codes_sample(layer, t, decl.gptq_v1, groups)
    found, _ = numeric.plausibility(layer, sample.q, sample.zeros, decl.zero_point is not False)
    return out + found + numeric.zero_words(layer, reader)


def _progress(total: int, progress: bool | None):
    from tqdm import tqdm

    show = progress if progress is not None else (sys.stderr.isatty() and total > AUTO_PROGRESS_BYTES)
    return tqdm(total=total, unit="B", unit_scale=True, desc="verify", disable=not show, file=sys.stderr, leave=False)


def _quantised_prefixes(tensors: dict[str, TensorInfo]) -> set[str]:
    return set(group_by_prefix(tensors, "qweight")) | set(group_by_prefix(tensors, "weight_packed"))


def _stream(layers: list[Layer], folder: Folder, reader: TensorReader, decl: Declared, progress) -> list[Finding]:
    packed = _quantised_prefixes(folder.tensors)
    floats = [i for n, i in sorted(folder.tensors.items())
              if i.is_float and not (n.rpartition(".")[0] in packed and not n.endswith(".bias"))]
    out = []
    with _progress(sum(i.nbytes for i in folder.tensors.values()), progress) as bar:
        work = [(layer.prefix, list(layer.infos.values()), lambda lay=layer: _numeric_layer(lay, reader, decl))
                for layer in layers]
        work += [(info.name, [info], lambda i=info: numeric.check_floats(i, reader)) for info in floats]
        ahead = _Readahead(reader, [infos for _, infos, _ in work])
        try:
            for i, (where, _, check) in enumerate(work):
                out += _guarded(check, where)
                ahead.done_with(i)
                bar.update(ahead.sizes[i])
        finally:
            ahead.stop()
    return out


class _Readahead:
    """A background thread asks the kernel to read up to PREFETCH_BYTES beyond the item being
    checked, so disk reads overlap the checks (fadvise blocks while it submits, hence a thread)."""

    def __init__(self, reader: TensorReader, items: list[list[TensorInfo]]):
        self.reader, self.items = reader, items
        self.sizes = [sum(i.nbytes for i in item) for item in items]
        self.consumed, self.stopped = 0, False
        self.cond = threading.Condition()
        self.thread = threading.Thread(target=self._run, name="verify-readahead", daemon=True)
        self.thread.start()

    def _run(self) -> None:
        issued = 0
        for item, size in zip(self.items, self.sizes):
            with self.cond:
                # wait_for runs the predicate within this iteration, so it reads this iteration's issued
                self.cond.wait_for(lambda: self.stopped or issued - self.consumed < PREFETCH_BYTES)  # noqa: B023
                if self.stopped:
                    return
            self.reader.prefetch(item)
            issued += size

    def done_with(self, index: int) -> None:
        with self.cond:
            self.consumed += self.sizes[index]
            self.cond.notify()

    def stop(self) -> None:
        with self.cond:
            self.stopped = True
            self.cond.notify()
        self.thread.join()


def _guarded(fn, where: str) -> list[Finding]:
    try:
        return fn()
    except RemoteError as err:
        return [FILE_TRUNCATED.finding(str(err), tensor=where)]
    except Exception as err:  # noqa: BLE001 - reported, never raised
        return [VERIFIER_INTERNAL.finding(f"{type(err).__name__}: {str(err)[:160]}", tensor=where)]


def _policy(folder: Folder, decl: Declared, layers: list[Layer], report: Report) -> None:
    config = folder.config or {}
    raw_q = config.get("quantization_config") if isinstance(config.get("quantization_config"), dict) else {}
    quantised = sorted(_quantised_prefixes(folder.tensors))
    report.findings += loader_findings(decl, raw_q, layers, report.format or "")
    report.findings += head_findings(folder.config, folder.tensors)
    report.findings += module_findings(decl, quantised, folder.tensors, folder.config)
    report.findings += moe_findings(folder.tensors, folder.config)


def _run(path: Path, reference: str | None, allow_pickle: bool, progress: bool | None, report: Report,
         device=None, remote: RemoteFiles | None = None, cache=None, runtime=None) -> None:
    folder = open_folder(path)
    memory = _load_pickles(folder, allow_pickle) if folder.pickled and not folder.tensors else {}
    if folder.pickled and not memory and folder.tensors:
        folder.add(FILE_PICKLE, "info",
                   f"{len(folder.pickled)} pickle files beside the safetensors were ignored (never unpickled)")
    report.findings += folder.findings
    if not folder.readable or not folder.tensors:
        if folder.readable and not folder.pickled:
            report.findings.append(FILE_FOLDER.finding("no readable safetensors tensors in the folder"))
        report.readable = False
        return
    reader = TensorReader(memory, remote)
    decl = read_declared(folder.config)
    report.findings += decl.findings + number_findings(folder.config)
    layers = _layers(folder, decl, _ct_values(folder, reader, report), report)
    quantised = sorted(_quantised_prefixes(folder.tensors))
    report.findings += ct_field_findings(folder.config, layers, reader, decl, quantised)
    _policy(folder, decl, layers, report)
    if runtime is not None:
        from awq_harness.conformance.runtimes.matrix import add_matrix

        add_matrix(report, runtime, layers, decl, folder.config)
    report.findings += _stream(layers, folder, reader, decl, progress)
    if reference:
        _against_reference(path, layers, folder, reader, decl, reference, report, device, remote, cache)


def _against_reference(path: Path, layers: list[Layer], folder: Folder, reader: TensorReader, decl: Declared,
                       reference: str, report: Report, device, remote: RemoteFiles | None, cache) -> None:
    """The weight comparison, the fold check and the functional check; a remote checkpoint or
    reference is fetched as they read it, one layer at a time (lazy.fetching)."""
    from awq_harness.conformance.fold_consistency import check as fold_consistency
    from awq_harness.conformance.reference import compare, opened

    with opened(reference, cache) as (ref_folder, ref_remote, found):
        report.findings += found
        found, rows = compare(layers, reader, decl.gptq_v1, ref_folder, ref_remote)
        report.findings += found
        report.findings += fold_consistency(layers, folder.tensors, reader, decl.gptq_v1, folder.config, ref_folder,
                                            ref_remote)
        report.layers = rows
        with _fetching(remote), _fetching(ref_remote):
            _functional(path, ref_folder, report, device)
        if ref_remote is not None:
            report.findings.append(FILE_FOLDER.finding("reference " + ref_remote.summary("the reference"),
                                                       severity="info"))


@contextmanager
def _fetching(remote: RemoteFiles | None):
    if remote is None:
        yield
        return
    from awq_harness.awq_ref.checkpoint.lazy import fetching

    with fetching(remote.root, remote.ensure_tensors):
        yield


def _functional(path: Path, reference: str, report: Report, device=None) -> None:
    """Hidden states and perplexity against the float model: AutoAWQ layouts as they are, the
    others (compressed-tensors, GPTQ) through a float32 copy of their dequantised weights."""
    # reference.error and reference.fold-consistency are what this check complements; any other
    # error (reference.missing included: the float model cannot be built) means the two models
    # cannot run side by side
    compared = (REFERENCE_ERROR.id, REFERENCE_FOLD.id)
    structural = [f for f in report.findings if f.severity == "error" and f.rule not in compared]
    if report.format is None or structural:
        why = (f"the checkpoint or its reference has {len(structural)} errors" if structural
               else f"format {report.format}")
        report.findings.append(FUNCTIONAL_SKIPPED.finding(f"functional check not run: {why}"))
        return
    from awq_harness.conformance.functional import functional_check

    if report.format in AWQ_VERSIONS:
        found, report.functional = functional_check(str(path), reference, device=device)
    else:
        found, report.functional = _functional_dequantised(path, reference, device)
    report.findings += found


def _functional_dequantised(path: Path, reference: str, device=None):
    import tempfile

    from awq_harness.conformance.float_export import export_float
    from awq_harness.conformance.functional import functional_check

    with tempfile.TemporaryDirectory(prefix="awq-harness-functional-") as tmp:
        export_float(path, Path(tmp) / "dequantised", "fp32")
        return functional_check(str(Path(tmp) / "dequantised"), reference, device=device)


def _run_remote(url: str, reference: str | None, allow_pickle: bool, progress: bool | None, report: Report,
                device=None, cache=None, runtime=None) -> None:
    """A checkpoint behind a URL (conformance/remote.py): headers first, tensor bytes on demand."""
    from awq_harness.conformance import remote as fetch

    try:
        files, found = fetch.open_remote(url, cache)
    except RemoteError as err:
        report.findings.append(FILE_FOLDER.finding(str(err)))
        report.readable = False
        return
    try:
        report.findings += found
        _run(files.root, reference, allow_pickle, progress, report, device, files, cache, runtime)
        report.findings.append(FILE_FOLDER.finding(files.summary(), severity="info"))
    finally:
        fetch.close(files)


def load_layers(path: str | Path) -> tuple[Folder, Declared, list[Layer], TensorReader, Report]:
    """The checked layers of a safetensors checkpoint, for tools that rewrite it (convert)."""
    report = Report(checkpoint=str(path))
    folder = open_folder(path)
    reader = TensorReader()
    decl = read_declared(folder.config)
    layers = _layers(folder, decl, _ct_values(folder, reader, report), report) if folder.tensors else []
    return folder, decl, layers, reader, report


def verify(path: str | Path, reference: str | Path | None = None, allow_pickle: bool = False,
           progress: bool | None = None, device=None, cache: bool = True, runtime=None) -> Report:
    """``device`` (a torch.device; None: the CPU): where ``reference``'s functional check runs.
    ``cache``: keep the byte ranges fetched from a remote checkpoint or reference (remote_cache.py).
    ``runtime`` (a ``runtimes.matrix.MatrixRequest``): also build the runtime matrix of the layers read."""
    from awq_harness.conformance.remote_cache import open_cache
    from awq_harness.conformance.rules import (
        RULES,  # the registry collects this module's rules, so it is read at call time
    )

    report = Report(checkpoint=str(path))
    report.rules_run = [r for r in RULES if reference or not r.startswith(("reference.", "functional."))]
    reference = str(reference) if reference else None
    store = open_cache(cache) if is_remote(path) or is_remote(reference) else None
    try:
        if is_remote(path):
            _run_remote(str(path), reference, allow_pickle, progress, report, device, store, runtime)
        else:
            _run(Path(path), reference, allow_pickle, progress, report, device, cache=store, runtime=runtime)
    except RemoteError as err:  # a remote read outside a guarded check (config values, reference layers)
        report.findings.append(FILE_TRUNCATED.finding(str(err)))
    except (Exception, RecursionError) as err:  # noqa: BLE001 - the verifier must not raise on any input
        report.findings.append(VERIFIER_INTERNAL.finding(f"{type(err).__name__}: {str(err)[:200]}"))
    return report
