"""``awq-harness quantize``: quantise a float model and write an AWQ (or GPTQ) checkpoint.

By default one decoder layer at a time (``awq_ref.pipeline.layer_loop``): memory is one layer plus
its activations; with ``--device cuda`` that layer and its activations are what the GPU holds.
``--in-memory`` loads the whole float model first and runs the same loop with the same method
step and the same writer, so the files are byte for byte the same.
The method (``--method``, from ``awq_ref.methods.registry``) says which formats it writes,
whether it reads calibration data and whether it can keep layers or linears in float.
``--format compressed-tensors`` takes any method's numbers (``awq_ref.pipeline.keep_ct``), and is
the one layout where ``--keep-layers`` may keep modules at 8 bits (an 8-bit plan, or ``--keep-as 8bit``).
"""
from __future__ import annotations

import argparse
import contextlib
import time
from pathlib import Path

from tqdm import tqdm

from awq_harness.awq_ref import formats
from awq_harness.awq_ref.checkpoint.lazy import open_lazy
from awq_harness.awq_ref.cli.device_flag import add_device_flag
from awq_harness.awq_ref.cli.method_options import add_method_options, calibration_dtype, with_method_options
from awq_harness.awq_ref.data.corpus import DEFAULT_DOMAIN, DOMAINS
from awq_harness.awq_ref.data.models import DEFAULT_GROUP_SIZE, load_model, load_tokenizer, resolve_model_dir
from awq_harness.awq_ref.errors import HarnessError
from awq_harness.awq_ref.formats import compressed_tensors
from awq_harness.awq_ref.methods.method import Method
from awq_harness.awq_ref.methods.registry import QuantizeRequest, get_method, method_names, methods
from awq_harness.awq_ref.model.arch import decoder_layers, layer_prefix, linears_in
from awq_harness.awq_ref.pipeline.ct_run import compressed_tensors_run, method_version
from awq_harness.awq_ref.pipeline.keep import KeepPlan, parse_keep
from awq_harness.awq_ref.pipeline.keep_step import KeepLinearsStep, check_keeps_float
from awq_harness.awq_ref.pipeline.layer_loop import Loaded, quantize_folder
from awq_harness.awq_ref.pipeline.quantize import method_step, output_layout
from awq_harness.awq_ref.primitives.device import describe_peak, peak_memory, reset_peak_memory, resolve_device
from awq_harness.awq_ref.primitives.quant import QuantError, QuantSpec


def add_parser(sub) -> None:
    p = sub.add_parser("quantize", help="quantise a model and save an AWQ checkpoint",
                       formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--model", default="default", help="'default' (SmolLM2-135M-Instruct) or a model folder")
    p.add_argument("--method", default="rtn", choices=method_names())
    p.add_argument("--w-bit", type=int, default=4, help="weight bits")
    p.add_argument("--group-size", type=int, default=DEFAULT_GROUP_SIZE, help="inputs per group, -1 per channel")
    p.add_argument("--format", default="gemm",
                   choices=sorted({f for m in methods() for f in m.formats} | {compressed_tensors.NAME}),
                   help="AutoAWQ layout, GPTQ's own layout (--method gptq only), or compressed-tensors (any method)")
    p.add_argument("--no-zero-point", action="store_true", help="symmetric quantisation")
    p.add_argument("--calib-samples", type=int, default=128, help="calibration blocks (calibrated methods)")
    p.add_argument("--seqlen", type=int, default=512, help="tokens per calibration block")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--calib-domain", default=DEFAULT_DOMAIN, choices=sorted(DOMAINS),
                   help="text domain of the calibration split (calibrated methods)")
    p.add_argument("--out", required=True, help="checkpoint folder to create")
    p.add_argument("--overwrite", action="store_true", help="replace an existing --out folder")
    p.add_argument("--keep-layers", metavar="PLAN",
                   help="kept in float: decoder layers and linears ('3,7,model.layers.5.mlp.down_proj') "
                        "or a plan file from 'awq-harness plan --json'")
    p.add_argument("--keep-as", choices=["float", "8bit"], default=None,
                   help="how --keep-layers keeps a plain list (a plan file says it itself); "
                        "8bit needs --format compressed-tensors")
    p.add_argument("--in-memory", action="store_true",
                   help="load the whole float model first (same files, memory ~ the model instead of one layer)")
    add_device_flag(p)
    add_method_options(p)
    p.set_defaults(func=run)


def _folder_bytes(folder: Path) -> int:
    return sum(p.stat().st_size for p in folder.iterdir() if p.suffix == ".safetensors")


def _request(args) -> QuantizeRequest:
    try:
        spec = QuantSpec(args.w_bit, args.group_size, not args.no_zero_point)
    except QuantError as err:
        raise HarnessError(str(err)) from None
    version = method_version(get_method(args.method), args.format)
    request = QuantizeRequest(spec, version, args.calib_samples, args.seqlen, args.seed,
                              calib_domain=args.calib_domain)
    return with_method_options(request, args)


def check_method_format(method: Method, fmt: str, keep: str | None) -> None:
    """A method writes only its own formats: GPTQ's numbers go only to GPTQ's layout (its
    quantization_config says how they were made), and only GPTQ's numbers do."""
    if not method.formats:
        raise HarnessError(f"--method {method.name} only fake-quantises for evaluation (awq-harness eval --methods "
                           f"{method.name}); it writes no checkpoint format")
    if fmt not in method.formats and fmt != compressed_tensors.NAME:
        raise HarnessError(f"--method {method.name} writes --format {'|'.join(method.formats)}, not --format {fmt}")
    if keep:
        check_keeps_float(method)


def _check_fits(model, request: QuantizeRequest, fmt: str) -> None:
    """Refuse settings the model or the layout cannot take, before any work is done."""
    if request.spec.bits != 4:
        raise HarnessError(f"--format {fmt} stores 4-bit weights only, got --w-bit {request.spec.bits}")
    layout = formats.get(fmt)
    for i, layer in enumerate(decoder_layers(model)):
        for name, linear in linears_in(layer).items():
            try:
                request.spec.group_width(linear.in_features)
            except QuantError as err:
                raise HarnessError(f"layer {i} {name}: {err}") from None
            for tensor, reason in layout.alignment(linear.out_features, linear.in_features):
                raise HarnessError(f"layer {i} {name}: --format {fmt} cannot pack {tensor}: {reason}")


@contextlib.contextmanager
def _progress(method: str, request: QuantizeRequest, layers: int):
    with tqdm(total=layers, desc=f"{method} w{request.spec.bits} g{request.spec.group_size}", unit="layer") as bar:
        try:
            yield lambda i: bar.update(1)
        except (QuantError, ValueError) as err:
            raise HarnessError(f"cannot quantise with {method}: {err}") from None


def _print_summary(args, errors: list, seconds: float, source: Path, out: Path) -> None:
    worst = sorted(errors, key=lambda e: e.rel_error, reverse=True)[:5]
    mean = sum(e.rel_error for e in errors) / len(errors)
    src, dst = _folder_bytes(source), _folder_bytes(out)
    print(f"quantised {len(errors)} linears in {seconds:.1f} s -> {out}")
    if get_method(args.method).calibrated:
        print(f"calibration dtype: {calibration_dtype(args).describe()}")
    print(f"size: {dst / 1e6:.1f} MB (source {src / 1e6:.1f} MB, {dst / max(src, 1):.2f}x)")
    print(f"weight error ||W_hat - W|| / ||W||: mean {mean:.4f}, worst:")
    for e in worst:
        print(f"  {e.rel_error:.4f}  {e.name}")
    peak = peak_memory(args.device)
    if peak is not None:
        print(describe_peak(peak))


def _device_meta(args) -> dict:
    """Where it ran, for a GPU run only (a CPU run's metadata stays what it was)."""
    peak = peak_memory(args.device)
    return {} if peak is None else {"device": str(args.device), "peak_device_memory": peak}


def _meta(args, method: Method, request: QuantizeRequest, keep: KeepPlan, errors: list) -> dict:
    return {"method": method.name, "request": request.to_json(), "source": str(args.model),
            "calib_dtype_choice": calibration_dtype(args).to_json(),
            "keep_layers": keep.layers, "keep_linears": keep.linears, **_keep_meta(args, keep),
            **method.metadata(request),
            **_device_meta(args), "linear_errors": {e.name: e.rel_error for e in errors}}


def _keep_meta(args, keep: KeepPlan) -> dict:
    """The format and how modules were kept, for compressed-tensors runs only (others keep their metadata)."""
    return {"format": args.format, "keep_as": keep.keep_as} if args.format == compressed_tensors.NAME else {}


def _ct_quantize(args, source, out: Path, method: Method, request: QuantizeRequest, tokenizer) -> list:
    keep = parse_keep(args.keep_layers, source.model, args.keep_as, writes=("float", "8bit"))
    run = compressed_tensors_run(source.model, method, request, tokenizer, keep)
    with _progress(method.name, request, len(source.layers)) as on_layer:
        return quantize_folder(source, out, run.step, run.layout, run.float_layers,
                               lambda errors: _meta(args, method, request, keep, errors), args.overwrite, on_layer,
                               args.device)


def _quantize(args, source, out: Path, method: Method, request: QuantizeRequest, tokenizer) -> list:
    """``source``: the folder read lazily, or the model loaded (``--in-memory``); the same loop."""
    _check_fits(source.model, request, args.format)
    if args.format == compressed_tensors.NAME:
        return _ct_quantize(args, source, out, method, request, tokenizer)
    keep = parse_keep(args.keep_layers, source.model, args.keep_as)
    prefix = layer_prefix(source.model)
    layout = output_layout(source.model, method, request, keep.not_converted(prefix))
    with _progress(method.name, request, len(source.layers)) as on_layer:
        step = KeepLinearsStep(method_step(method, request, tokenizer), method, keep.linears_by_layer(prefix))
        return quantize_folder(source, out, step, layout, keep.layers,
                               lambda errors: _meta(args, method, request, keep, errors), args.overwrite, on_layer,
                               args.device)


def run(args) -> int:
    args.device = resolve_device(args.device)  # before anything is read or written
    reset_peak_memory(args.device)
    out, folder = Path(args.out), resolve_model_dir(args.model)
    if out.exists() and not args.overwrite:
        raise HarnessError(f"{out} already exists (use --overwrite to replace it)")
    request, method = _request(args), get_method(args.method)
    check_method_format(method, args.format, args.keep_layers)
    tokenizer = load_tokenizer(folder) if method.calibrated else None
    started = time.perf_counter()
    source = Loaded(load_model(folder), folder) if args.in_memory else open_lazy(folder)
    errors = _quantize(args, source, out, method, request, tokenizer)
    _print_summary(args, errors, time.perf_counter() - started, folder, out)
    return 0
