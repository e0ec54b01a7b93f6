"""A CUDA device on a CPU-only torch: FakeTensorMode makes ``cuda`` tensors that hold no data and
raises ``FakeTensorDeviceMismatchError`` on any op mixing a cpu and a cuda tensor (a 0-dim cpu
tensor excepted, as on a real GPU), so a tensor left on the CPU in a pipeline fails here as it
would on the first GPU runner.

Three things FakeTensorMode cannot do on its own, and what ``fake_cuda`` does instead:

* values: a fake tensor has none, so reading one into Python (``float(loss)``, ``torch.equal``)
  returns a fixed number (``_Scalars``): the arithmetic is not checked here, only where each
  tensor lives (the real numbers are the CPU tests' and ``-m gpu``'s job);
* data-dependent shapes (boolean-mask indexing, ``unique``): a ``ShapeEnv`` gives them symbolic sizes;
* device guards: many of torch's Python bindings (``contiguous``, indexing) take a guard on
  the tensor's device, and a CPU build registers none for CUDA (torch 2.13's
  ``_ensureCUDADeviceGuardSet`` fills the slot only on CUDA builds without a GPU). Inside the
  block the CUDA slot of c10's guard registry holds the no-op guard that ``meta`` uses, which
  is what a CUDA build without a GPU gets from FakeTensorMode (``_install_cuda_guard``); a device
  named without an index ("cuda") then resolves to ``meta``, so the harness always names it;
* ``nn.Module.to`` swaps a fake parameter in place (``torch.utils.swap_tensors``), which the
  mode's weak references forbid; inside the block it assigns the moved tensor instead, as
  torch itself does when ``torch.__future__.set_overwrite_module_params_on_conversion(True)``.

Build the model outside the block (real CPU tensors), move it or let the pipeline move it inside.
Models run eager attention (``eager``): torch's SDPA picks its CUDA kernel from the device's
properties, which a CPU build cannot read; the harness's own code is what is checked.
"""
from __future__ import annotations

import contextlib
import ctypes
import json
import os
import warnings
import weakref
from pathlib import Path
from typing import Callable

import pytest
import torch
from torch import nn
from torch._subclasses.fake_tensor import FakeTensorDeviceMismatchError, FakeTensorMode
from torch.fx.experimental.symbolic_shapes import ShapeEnv
from torch.utils._python_dispatch import TorchDispatchMode

CUDA = torch.device("cuda", 0)
__all__ = ["CUDA", "FakeTensorDeviceMismatchError", "devices", "eager", "fake_cuda", "in_child"]


class _Scalars(TorchDispatchMode):
    """Answers the ops that read a fake tensor's value into Python with a fixed value: a check
    that all elements hold (``isfinite(w).all()``, ``torch.equal``) passes, any other truth
    value (``codes.min() < 0``) is False, a number is 1.0 or 0."""

    def __init__(self):
        super().__init__()
        self.all_results: dict[int, weakref.ref] = {}  # by id: tensors compare elementwise

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        if func is torch.ops.aten._local_scalar_dense.default:
            t = args[0]
            if t.dtype == torch.bool:
                ref = self.all_results.get(id(t))
                return ref is not None and ref() is t
            return 1.0 if t.is_floating_point() else 0
        if func is torch.ops.aten.equal.default:
            return True
        out = func(*args, **(kwargs or {}))
        if func.overloadpacket.__name__ == "all":
            self.all_results[id(out)] = weakref.ref(out)
        return out


def _assigning_apply(self: nn.Module, fn, recurse: bool = True):
    if recurse:
        for child in self.children():
            child._apply(fn)
    for key, param in self._parameters.items():
        if param is not None:
            with torch.no_grad():
                self._parameters[key] = nn.Parameter(fn(param), param.requires_grad)
    for key, buf in self._buffers.items():
        if buf is not None:
            self._buffers[key] = fn(buf)
    return self


def _with_cache_reset(apply):
    def wrapped(self, fn, recurse=True):
        forget = getattr(self, "forget_cache", None)
        if forget is not None:
            forget()
        return apply(self, fn, recurse)
    return wrapped


_CUDA_SLOT, _META_SLOT = 1, 14  # c10::DeviceType::CUDA, ::Meta


def _install_cuda_guard() -> None:
    """A no-op device guard for CUDA, for the rest of the process (as torch's own
    ``_ensureCUDADeviceGuardSet``: fake tensors freed later still look their guard up)."""
    lib = ctypes.CDLL(str(Path(torch.__file__).parent / "lib" / "libc10.so"))
    registry = ctypes.c_void_p.in_dll(lib, "_ZN3c104impl26device_guard_impl_registryE")
    slots = (ctypes.c_void_p * (_META_SLOT + 1)).from_address(ctypes.addressof(registry))
    if slots[_CUDA_SLOT] is None:
        slots[_CUDA_SLOT] = slots[_META_SLOT]


@contextlib.contextmanager
def fake_cuda():
    """The block runs with fake tensors; ``CUDA`` is a usable device inside it."""
    if torch.version.cuda is not None:
        pytest.skip("the fake device is for CPU builds of torch (a CUDA build runs the gpu tests)")
    _install_cuda_guard()
    original = nn.Module._apply
    nn.Module._apply = _with_cache_reset(_assigning_apply)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # FakeTensor data_ptr deprecation, from deepcopy
            mode = FakeTensorMode(allow_non_fake_inputs=True, shape_env=ShapeEnv())
            mode.cache_enabled = False  # its dispatch cache is shared by every mode of the process
            with mode, _Scalars():
                yield CUDA
    finally:
        nn.Module._apply = original


def eager(model: nn.Module) -> nn.Module:
    """``model`` with eager attention (see the module docstring)."""
    model.config._attn_implementation = "eager"
    return model


def devices(tensors) -> set[str]:
    return {str(t.device) for t in tensors}


def in_child(scenario: Callable[[], object]) -> dict:
    """Run ``scenario`` in a forked child and return {"ok": its JSON-able result} or {"error":
    exception type name, "message": ...}. Each fake-device run gets a fresh process: FakeTensorMode's
    symbolic shapes on a CPU build are not robust across runs in one process (a later run can crash it)."""
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: never returns into pytest
        os.close(read)
        try:
            outcome = {"ok": scenario()}
        except BaseException as err:  # noqa: BLE001 - reported to the parent, which asserts on it
            outcome = {"error": type(err).__name__, "message": str(err).splitlines()[0] if str(err) else ""}
        with os.fdopen(write, "w") as pipe:
            pipe.write(json.dumps(outcome, default=str))
        os._exit(0)
    os.close(write)
    with os.fdopen(read) as pipe:
        text = pipe.read()
    _, status = os.waitpid(pid, 0)
    if not text:
        raise AssertionError(f"the fake-device child died (wait status {status})")
    return json.loads(text)
