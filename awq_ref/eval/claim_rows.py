"""The evaluated rows the claims compare (``awq_ref.eval.claims``), and the settings they run at.

A row (``Variant``) is one model, float or quantised in memory by a registered method, scored
on the held-out windows of one text domain against the float model's cached distributions
(``awq_ref.eval.reference``): per-window NLL, per-token KL divergence and top-1 agreement.
Rows are stored in a folder (``RowStore``) as they are computed, so a run can be split across
processes or resumed; a row's file name holds everything that determines it (settings, method,
bits, calibration text and size, evaluation text). Each quantised model is made once and scored
on every text its rows name.
"""
from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Callable

import torch
from safetensors.torch import load_file, save_file

from awq_harness.awq_ref.data.corpus import DEFAULT_DOMAIN
from awq_harness.awq_ref.data.models import load_model, load_tokenizer, resolve_model_dir
from awq_harness.awq_ref.eval.metrics import TokenScores
from awq_harness.awq_ref.eval.perplexity import make_windows
from awq_harness.awq_ref.eval.reference import cached_reference, score_windows
from awq_harness.awq_ref.methods.awq import AwqSearchConfig
from awq_harness.awq_ref.methods.gptq import GptqConfig
from awq_harness.awq_ref.methods.registry import QuantizeRequest, get_method
from awq_harness.awq_ref.model.dtype import cast_model
from awq_harness.awq_ref.pipeline.quantize import quantize_model
from awq_harness.awq_ref.primitives.quant import QuantSpec

GROUP_SIZE = 64  # the default model's group size
ROWS_VERSION = 2  # bump when scoring changes, so rows stored by older code are recomputed, not mixed in


@dataclass(frozen=True)
class ClaimSettings:
    name: str
    calib_samples: int
    calib_seqlen: int
    windows: int
    seqlen: int
    curve: tuple[int, ...]            # AWQ w4 calibration sizes (blocks of calib_seqlen)
    loss_blocks: int | None = None    # AWQ scale-search loss blocks (None: all)
    calib_dtype: str = "float32"      # resolved (never "auto") so rows are keyed by what ran
    eval_dtype: str = "float32"

    def to_json(self) -> dict:
        return asdict(self)


CI = ClaimSettings("ci", calib_samples=8, calib_seqlen=256, windows=16, seqlen=256, curve=(4, 8, 16), loss_blocks=4)
SLOW = ClaimSettings("slow", calib_samples=128, calib_seqlen=512, windows=32, seqlen=512, curve=(32, 64, 128, 256),
                     loss_blocks=16)
SETTINGS = {"ci": CI, "slow": SLOW}


@dataclass(frozen=True)
class Variant:
    """One evaluated row: a model (float, or a method at a bit width and calibration) on one text."""

    method: str                      # "fp" or a registered method
    bits: int = 16
    eval_domain: str = DEFAULT_DOMAIN
    calib_domain: str = DEFAULT_DOMAIN
    calib_samples: int | None = None  # None: the settings' default

    @property
    def label(self) -> str:
        if self.method == "fp":
            return f"fp on {self.eval_domain}"
        calib = ""
        if get_method(self.method).calibrated:
            calib = f" calib {self.calib_domain}" + (f" n={self.calib_samples}" if self.calib_samples else "")
        return f"{self.method} w{self.bits}{calib} on {self.eval_domain}"

    def model_key(self, s: ClaimSettings) -> str:
        if self.method == "fp":
            return "fp"
        n = self.calib_samples or s.calib_samples
        calib = f"-{self.calib_domain}-n{n}" if get_method(self.method).calibrated else ""
        return f"{self.method}-w{self.bits}-g{GROUP_SIZE}{calib}"

    def key(self, s: ClaimSettings) -> str:
        return f"{self.model_key(s)}-on-{self.eval_domain}"


def _store_name(s: ClaimSettings) -> str:
    return (f"{s.name}-c{s.calib_samples}x{s.calib_seqlen}-e{s.windows}x{s.seqlen}-lb{s.loss_blocks}"
            f"-{s.calib_dtype}-{s.eval_dtype}-r{ROWS_VERSION}")


class RowMissing(LookupError):
    """A row a claim needs is not stored, and the store was told not to compute it."""


@dataclass
class RowStore:
    """Rows of one model and settings in ``folder/<settings>/<key>.safetensors`` (+ ``.json``).
    ``compute_missing`` False: a missing row raises ``RowMissing`` instead of being computed."""

    folder: Path
    model: str
    settings: ClaimSettings
    on_row: Callable[[str, dict], None] = field(default=lambda key, info: None)
    compute_missing: bool = True

    @property
    def root(self) -> Path:
        return self.folder / _store_name(self.settings)

    def _path(self, variant: Variant) -> Path:
        return self.root / f"{variant.key(self.settings)}.safetensors"

    def stored(self, variant: Variant) -> bool:
        return self._path(variant).is_file()

    def get(self, variant: Variant) -> TokenScores:
        path = self._path(variant)
        if not path.is_file():
            if not self.compute_missing:
                raise RowMissing(variant.label)
            self.compute([variant])
        t = load_file(str(path))
        return TokenScores(t["nll"], t["kld"].shape[1], t["kld"], t["top1"].bool())

    def info(self, variant: Variant) -> dict:
        return json.loads(self._path(variant).with_suffix(".json").read_text())

    def compute(self, variants: list[Variant]) -> None:
        """Quantise each model once and score it on every text its missing variants name."""
        missing = [v for v in variants if not self._path(v).is_file()]
        for model_key in dict.fromkeys(v.model_key(self.settings) for v in missing):
            group = [v for v in missing if v.model_key(self.settings) == model_key]
            self._compute_model(group)

    def _compute_model(self, group: list[Variant]) -> None:
        import time

        s, first = self.settings, group[0]
        started = time.perf_counter()
        model = load_model(self.model, torch.float32)
        if first.method != "fp":
            quantize_model(model, first.method, _request(first, s),
                           load_tokenizer(self.model) if get_method(first.method).calibrated else None)
        quant_seconds = time.perf_counter() - started
        model = cast_model(model, getattr(torch, s.eval_dtype))
        for variant in group:
            started = time.perf_counter()
            windows = eval_windows(self.model, variant.eval_domain, s)
            reference, _ = cached_reference(resolve_model_dir(self.model), windows, getattr(torch, s.eval_dtype),
                                            lambda: load_model(self.model, getattr(torch, s.eval_dtype)))
            scores, _ = score_windows(model, windows, reference)
            info = {"label": variant.label, "variant": asdict(variant), "quantize_seconds": round(quant_seconds, 1),
                    "eval_seconds": round(time.perf_counter() - started, 1)}
            self._save(variant, scores, info)
            self.on_row(variant.key(s), info)

    def _save(self, variant: Variant, scores: TokenScores, info: dict) -> None:
        path = self._path(variant)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.name}.partial")
        save_file({"nll": scores.nll, "kld": scores.kld, "top1": scores.top1.to(torch.uint8)}, str(tmp))
        path.with_suffix(".json").write_text(json.dumps(info, indent=1) + "\n")
        tmp.replace(path)


def _request(v: Variant, s: ClaimSettings) -> QuantizeRequest:
    return QuantizeRequest(QuantSpec(v.bits, GROUP_SIZE), None, v.calib_samples or s.calib_samples, s.calib_seqlen,
                           0, awq=AwqSearchConfig(compute_dtype=s.calib_dtype, loss_blocks=s.loss_blocks),
                           gptq=GptqConfig(compute_dtype=s.calib_dtype), calib_domain=v.calib_domain)


_WINDOWS: dict[tuple, torch.Tensor] = {}


def eval_windows(model: str, domain: str, s: ClaimSettings) -> torch.Tensor:
    key = (model, domain, s.windows, s.seqlen)
    if key not in _WINDOWS:
        from awq_harness.awq_ref.eval.evaluate import eval_tokens

        _WINDOWS[key] = make_windows(eval_tokens(model, domain), s.seqlen, s.windows)
    return _WINDOWS[key]
