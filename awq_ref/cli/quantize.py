"""``awq-harness quantize``: quantise a float model and write an AWQ checkpoint."""
from __future__ import annotations

import argparse
import copy
import time
from pathlib import Path

from tqdm import tqdm

from awq_ref.arch import decoder_layers, layer_prefix, linears_in
from awq_ref.checkpoint import AwqConfig, save_checkpoint
from awq_ref.cli.method_options import add_method_options, with_method_options
from awq_ref.errors import HarnessError
from awq_ref.keep import parse_keep
from awq_ref.keep_step import folded_before_quantizing, restore_kept_linears
from awq_ref.methods import CALIBRATED, METHODS, QuantizeRequest, run_method
from awq_ref.models import DEFAULT_GROUP_SIZE, load_model, load_tokenizer, resolve_model_dir
from awq_ref.quant import QuantError, QuantSpec


def add_parser(sub) -> None:
    p = sub.add_parser("quantize", help="quantise a model and save an AWQ checkpoint",
                       formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--model", default="default", help="'default' (SmolLM2-135M-Instruct) or a model folder")
    p.add_argument("--method", default="rtn", choices=sorted(METHODS))
    p.add_argument("--w-bit", type=int, default=4, help="weight bits")
    p.add_argument("--group-size", type=int, default=DEFAULT_GROUP_SIZE, help="inputs per group, -1 per channel")
    p.add_argument("--format", default="gemm", choices=["gemm", "gemv"], help="AutoAWQ layout")
    p.add_argument("--no-zero-point", action="store_true", help="symmetric quantisation")
    p.add_argument("--calib-samples", type=int, default=128, help="calibration blocks (calibrated methods)")
    p.add_argument("--seqlen", type=int, default=512, help="tokens per calibration block")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", required=True, help="checkpoint folder to create")
    p.add_argument("--overwrite", action="store_true", help="replace an existing --out folder")
    p.add_argument("--keep-layers", metavar="PLAN",
                   help="kept in float: decoder layers and linears ('3,7,model.layers.5.mlp.down_proj') "
                        "or a plan file from 'awq-harness plan --json'")
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
            if linear.out_features % 8:
                raise HarnessError(f"layer {i} {name}: out_features {linear.out_features} is not a multiple of 8")


def _quantize(model, tokenizer, method: str, request: QuantizeRequest) -> list:
    layers = len(decoder_layers(model))
    with tqdm(total=layers, desc=f"{method} w{request.spec.bits} g{request.spec.group_size}", unit="layer") as bar:
        try:
            return run_method(method, model, tokenizer, request, on_layer=lambda i: bar.update(1))
        except (QuantError, ValueError) as err:
            raise HarnessError(f"cannot quantise with {method}: {err}") from None


def _print_summary(errors: list, seconds: float, source: Path, out: Path) -> None:
    worst = sorted(errors, key=lambda e: e.rel_error, reverse=True)[:5]
    mean = sum(e.rel_error for e in errors) / len(errors)
    src, dst = _folder_bytes(source), _folder_bytes(out)
    print(f"quantised {len(errors)} linears in {seconds:.1f} s -> {out}")
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


def run(args) -> int:
    out, source = Path(args.out), resolve_model_dir(args.model)
    if out.exists() and not args.overwrite:
        raise HarnessError(f"{out} already exists (use --overwrite to replace it)")
    request = _request(args)
    model = load_model(source)
    _check_fits(model, request)
    keep = parse_keep(args.keep_layers, model)
    originals = {i: copy.deepcopy(decoder_layers(model)[i]) for i in keep.layers}
    tokenizer = load_tokenizer(source) if args.method in CALIBRATED else None
    folded = folded_before_quantizing(model, args.method, tokenizer, request, keep)
    started = time.perf_counter()
    errors = _quantize(model, tokenizer, args.method, request)
    seconds = time.perf_counter() - started
    restore_kept_linears(model, folded, keep)
    _restore_float_layers(model, originals)
    not_converted = keep.not_converted(layer_prefix(model))
    errors = [e for e in errors if not any(e.name.startswith(prefix) for prefix in not_converted or [])]
    meta = {"method": args.method, "request": request.to_json(), "source": str(args.model), "keep_layers": keep.layers, "keep_linears": keep.linears,
            "linear_errors": {e.name: e.rel_error for e in errors}}
    save_checkpoint(model, out, AwqConfig(request.spec, request.version, not_converted), source=source,
                    meta=meta, overwrite=args.overwrite)
    _print_summary(errors, seconds, source, out)
    return 0
