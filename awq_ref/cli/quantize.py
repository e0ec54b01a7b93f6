"""``awq-harness quantize``: quantise a float model and write an AWQ (or GPTQ) checkpoint.

By default one decoder layer at a time (``awq_ref.pipeline.layer_loop``): memory is one layer plus
its activations, and the files are byte for byte those of ``--in-memory``, which loads the
whole float model first (the older path, kept for comparison and as a fallback).
"""
from __future__ import annotations

import argparse
import contextlib
import copy
import time
from pathlib import Path

from tqdm import tqdm

from awq_ref.checkpoint.awq import AwqConfig, save_checkpoint
from awq_ref.checkpoint.lazy import open_lazy
from awq_ref.cli.method_options import add_method_options, calibration_dtype, with_method_options
from awq_ref.cli.quantize_formats import layer_step, output_layout, save_gptq_in_memory
from awq_ref.data.models import DEFAULT_GROUP_SIZE, load_model, load_tokenizer, resolve_model_dir
from awq_ref.errors import HarnessError
from awq_ref.methods.registry import CALIBRATED, METHODS, QuantizeRequest, run_method
from awq_ref.model.arch import decoder_layers, layer_prefix, linears_in
from awq_ref.pipeline.keep import KeepPlan, parse_keep
from awq_ref.pipeline.keep_step import KeepLinearsStep, folded_before_quantizing, restore_kept_linears
from awq_ref.pipeline.layer_loop import quantize_folder
from awq_ref.primitives.quant import QuantError, QuantSpec


def add_parser(sub) -> None:
    p = sub.add_parser("quantize", help="quantise a model and save an AWQ checkpoint",
                       formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--model", default="default", help="'default' (SmolLM2-135M-Instruct) or a model folder")
    p.add_argument("--method", default="rtn", choices=sorted(METHODS))
    p.add_argument("--w-bit", type=int, default=4, help="weight bits")
    p.add_argument("--group-size", type=int, default=DEFAULT_GROUP_SIZE, help="inputs per group, -1 per channel")
    p.add_argument("--format", default="gemm", choices=["gemm", "gemv", "gptq"],
                   help="AutoAWQ layout, or GPTQ's own layout (--method gptq only)")
    p.add_argument("--no-zero-point", action="store_true", help="symmetric quantisation")
    p.add_argument("--calib-samples", type=int, default=128, help="calibration blocks (calibrated methods)")
    p.add_argument("--seqlen", type=int, default=512, help="tokens per calibration block")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", required=True, help="checkpoint folder to create")
    p.add_argument("--overwrite", action="store_true", help="replace an existing --out folder")
    p.add_argument("--keep-layers", metavar="PLAN",
                   help="kept in float: decoder layers and linears ('3,7,model.layers.5.mlp.down_proj') "
                        "or a plan file from 'awq-harness plan --json'")
    p.add_argument("--in-memory", action="store_true",
                   help="load the whole float model first (same files, memory ~ the model instead of one layer)")
    add_method_options(p)
    p.set_defaults(func=run)


def _folder_bytes(folder: Path) -> int:
    return sum(p.stat().st_size for p in folder.iterdir() if p.suffix == ".safetensors")


def _request(args) -> QuantizeRequest:
    try:
        spec = QuantSpec(args.w_bit, args.group_size, not args.no_zero_point)
    except QuantError as err:
        raise HarnessError(str(err)) from None
    return with_method_options(QuantizeRequest(spec, args.format, args.calib_samples, args.seqlen, args.seed), args)


def check_method_format(method: str, fmt: str, keep: str | None) -> None:
    """GPTQ's numbers go only to GPTQ's layout, and only GPTQ's numbers do: the layout's
    quantization_config (quant_method gptq, damp_percent, desc_act) says how they were made."""
    if method == "gptq" and fmt != "gptq":
        raise HarnessError(f"gptq cannot write AWQ layouts (--format {fmt}); use --format gptq")
    if fmt == "gptq" and method != "gptq":
        raise HarnessError(f"--format gptq stores GPTQ's own numbers; --method {method} writes --format gemm|gemv")
    if fmt == "gptq" and keep:
        raise HarnessError("--keep-layers: the GPTQ layout has no float layers; use --format gemm|gemv")


def _check_fits(model, request: QuantizeRequest) -> None:
    """Refuse settings the model or the layout cannot take, before any work is done."""
    if request.spec.bits != 4:
        raise HarnessError(f"--format {request.version} stores 4-bit weights only, got --w-bit {request.spec.bits}")
    for i, layer in enumerate(decoder_layers(model)):
        for name, linear in linears_in(layer).items():
            try:
                request.spec.group_width(linear.in_features)
            except QuantError as err:
                raise HarnessError(f"layer {i} {name}: {err}") from None
            if linear.out_features % 8 or (request.version == "gptq" and linear.in_features % 8):
                raise HarnessError(f"layer {i} {name}: in/out features {linear.in_features}/{linear.out_features} "
                                   f"are not multiples of 8")


@contextlib.contextmanager
def _progress(method: str, request: QuantizeRequest, layers: int):
    with tqdm(total=layers, desc=f"{method} w{request.spec.bits} g{request.spec.group_size}", unit="layer") as bar:
        try:
            yield lambda i: bar.update(1)
        except (QuantError, ValueError) as err:
            raise HarnessError(f"cannot quantise with {method}: {err}") from None


def _quantize(model, tokenizer, method: str, request: QuantizeRequest) -> list:
    with _progress(method, request, len(decoder_layers(model))) as on_layer:
        return run_method(method, model, tokenizer, request, on_layer=on_layer)


def _print_summary(args, errors: list, seconds: float, source: Path, out: Path) -> None:
    worst = sorted(errors, key=lambda e: e.rel_error, reverse=True)[:5]
    mean = sum(e.rel_error for e in errors) / len(errors)
    src, dst = _folder_bytes(source), _folder_bytes(out)
    print(f"quantised {len(errors)} linears in {seconds:.1f} s -> {out}")
    if args.method in CALIBRATED:
        print(f"calibration dtype: {calibration_dtype(args).describe()}")
    print(f"size: {dst / 1e6:.1f} MB (source {src / 1e6:.1f} MB, {dst / max(src, 1):.2f}x)")
    print(f"weight error ||W_hat - W|| / ||W||: mean {mean:.4f}, worst:")
    for e in worst:
        print(f"  {e.rel_error:.4f}  {e.name}")


def _restore_float_layers(model, originals: dict[int, object]) -> list[str]:
    """Put the kept layers back as they were; AWQ and RTN treat layers independently (the next
    layer's calibration input is the float output), so this equals never quantising them."""
    layers = decoder_layers(model)
    for i, layer in originals.items():
        layers[i] = layer
    return [f"{layer_prefix(model)}.{i}." for i in sorted(originals)]


def _meta(args, request: QuantizeRequest, keep: KeepPlan, errors: list) -> dict:
    return {"method": args.method, "request": request.to_json(), "source": str(args.model),
            "calib_dtype_choice": calibration_dtype(args).to_json(),
            "keep_layers": keep.layers, "keep_linears": keep.linears,
            "linear_errors": {e.name: e.rel_error for e in errors}}


def _quantize_streamed(args, source: Path, out: Path, request: QuantizeRequest, tokenizer) -> list:
    lazy = open_lazy(source)
    _check_fits(lazy.model, request)
    keep = parse_keep(args.keep_layers, lazy.model)
    prefix = layer_prefix(lazy.model)
    layout = output_layout(lazy.model, request, keep.not_converted(prefix))
    with _progress(args.method, request, len(lazy.layers)) as on_layer:
        step = KeepLinearsStep(layer_step(args.method, request, tokenizer), args.method, request,
                               keep.linears_by_layer(prefix))
        return quantize_folder(lazy, out, step, layout, keep.layers,
                               lambda errors: _meta(args, request, keep, errors), args.overwrite, on_layer)


def _quantize_in_memory(args, source: Path, out: Path, request: QuantizeRequest, tokenizer) -> list:
    model = load_model(source)
    _check_fits(model, request)
    if args.format == "gptq":
        with _progress(args.method, request, len(decoder_layers(model))) as on_layer:
            def meta(errors):
                return _meta(args, request, KeepPlan(), errors)

            return save_gptq_in_memory(model, tokenizer, request, out, source, meta, args.overwrite, on_layer)
    keep = parse_keep(args.keep_layers, model)
    originals = {i: copy.deepcopy(decoder_layers(model)[i]) for i in keep.layers}
    folded = folded_before_quantizing(model, args.method, tokenizer, request, keep)
    errors = _quantize(model, tokenizer, args.method, request)
    restore_kept_linears(model, folded, keep)
    _restore_float_layers(model, originals)
    not_converted = keep.not_converted(layer_prefix(model))
    errors = [e for e in errors if not any(e.name.startswith(prefix) for prefix in not_converted or [])]
    save_checkpoint(model, out, AwqConfig(request.spec, request.version, not_converted), source=source,
                    meta=_meta(args, request, keep, errors), overwrite=args.overwrite)
    return errors


def run(args) -> int:
    out, source = Path(args.out), resolve_model_dir(args.model)
    if out.exists() and not args.overwrite:
        raise HarnessError(f"{out} already exists (use --overwrite to replace it)")
    request = _request(args)
    check_method_format(args.method, args.format, args.keep_layers)
    tokenizer = load_tokenizer(source) if args.method in CALIBRATED else None
    started = time.perf_counter()
    quantize = _quantize_in_memory if args.in_memory else _quantize_streamed
    errors = quantize(args, source, out, request, tokenizer)
    _print_summary(args, errors, time.perf_counter() - started, source, out)
    return 0
