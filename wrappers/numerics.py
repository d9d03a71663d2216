"""The canonical numerical setting of training: what makes a model's weights a function of its cache key alone.

Float sums give different last bits in a different order, and torch's CPU kernels split their reductions (the
weight gradients' sums over a batch, above all) by the number of intra-op threads; over a few epochs of Adam those
last bits grow into different models (measured on the default suite before this setting: 53 of 99 figures
different, by up to 36.7 points, between 2 threads locally and 1 thread per Ray task). So every training in mmrb
runs inside `canonical_numerics()`: one intra-op thread (the canonical reduction order; these models are small) and
`torch.use_deterministic_algorithms(True)` (cuDNN / cuBLAS pick deterministic kernels on a GPU), set on entry and
restored on exit, whatever the caller (the local backend with torch's default threads, a Ray task with its own)
had set.

What cannot be made canonical enters the key instead (`numerics_identity`): the device type, the CPU's vector
instruction set torch dispatches to (AVX2 / AVX512 kernels sum in different orders), on a GPU the CUDA version
torch was built with (the GPU's name is only recorded in the manifest: a Ray driver computes its workers' keys
without a GPU); the torch version is already in every key through `wrappers.cache.code_digest`.
"""
from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from typing import Any

import torch

#: Intra-op threads of every training (the canonical reduction order).
CANONICAL_THREADS = 1
#: cuBLAS needs a fixed workspace to be deterministic (read when its handle is first created).
_CUBLAS_WORKSPACE = ":4096:8"


def numerics_identity(device: str | torch.device = "cpu") -> dict[str, Any]:
    """What decides a training's last bits besides its inputs and code, on `device`: the canonical setting
    (threads, deterministic algorithms) and the hardware's kernel family. Part of every trained model's key."""
    device = torch.device(device)
    identity: dict[str, Any] = {"threads": CANONICAL_THREADS, "deterministic": True, "device": device.type}
    if device.type == "cuda":  # known without a GPU (a Ray driver computes the keys of its workers' models)
        identity.update(cuda=torch.version.cuda)
    elif device.type == "cpu":
        identity.update(cpu_capability=torch.backends.cpu.get_cpu_capability())
    return identity


@contextlib.contextmanager
def canonical_numerics() -> Iterator[None]:
    """Train under the canonical numerical setting: `CANONICAL_THREADS` intra-op thread(s) and deterministic
    algorithms (a GPU op without a deterministic implementation warns rather than fails); the caller's settings
    (threads, deterministic mode, cuDNN flags, `CUBLAS_WORKSPACE_CONFIG`) are restored on exit, also on an error.
    Nested uses (a fusion model's branches trained inside its own training) restore their own entry's state."""
    threads = torch.get_num_threads()
    deterministic = torch.are_deterministic_algorithms_enabled()
    warn_only = torch.is_deterministic_algorithms_warn_only_enabled()
    cudnn = torch.backends.cudnn.deterministic, torch.backends.cudnn.benchmark
    workspace = os.environ.get("CUBLAS_WORKSPACE_CONFIG")
    try:
        torch.set_num_threads(CANONICAL_THREADS)
        if workspace is None:
            os.environ["CUBLAS_WORKSPACE_CONFIG"] = _CUBLAS_WORKSPACE
        torch.use_deterministic_algorithms(True, warn_only=True)
        torch.backends.cudnn.deterministic, torch.backends.cudnn.benchmark = True, False
        yield
    finally:
        torch.set_num_threads(threads)
        torch.use_deterministic_algorithms(deterministic, warn_only=warn_only)
        torch.backends.cudnn.deterministic, torch.backends.cudnn.benchmark = cudnn
        if workspace is None:
            os.environ.pop("CUBLAS_WORKSPACE_CONFIG", None)


def current_numerics(device: str | torch.device = "cpu") -> dict[str, Any]:
    """The numerical setting in force now on `device` (recorded in a trained model's manifest)."""
    device = torch.device(device)
    found = {"torch_threads": torch.get_num_threads(), "deterministic": torch.are_deterministic_algorithms_enabled(),
             "torch": torch.__version__, **numerics_identity(device)}
    if device.type == "cuda":
        found["gpu"] = torch.cuda.get_device_name(device)
    return found
