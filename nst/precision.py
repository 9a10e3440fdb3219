"""Reduced precision and memory layout for the VGG passes (pixels and optimiser stay fp32).

Where it is safe: only the network's forward/backward runs in bfloat16 (a bfloat16 copy of
its layers, ``nst.vgg.VGGFeatures.keep_copy_in``), plus the Gram products of its bfloat16
features (a GEMM accumulating in float32, the result cast to float32,
``nst.losses.gram_matrix``); the losses are reduced in float32, the loss targets come from a
pass in the same precision but are kept (and their statistics computed) in float32, and the
pixels, gradients and optimiser state are float32 throughout.
``docs/benchmarks.md`` records how far the final losses move from a float32 run.
"""

from __future__ import annotations

import torch

from .params import PRECISIONS


def bf16_supported(device: torch.device) -> bool:
    """True where bfloat16 convolutions run natively (AVX-512 BF16/AMX CPUs, Ampere+ GPUs)."""
    if device.type == "cuda":
        return torch.cuda.is_bf16_supported()
    if device.type == "cpu":
        return bool(
            torch.backends.mkldnn.is_available() and torch.ops.mkldnn._is_mkldnn_bf16_supported()
        )
    return False


def resolve(precision: str, device: torch.device) -> torch.dtype:
    """The dtype of the VGG passes: ``auto`` is bfloat16 where supported, else float32."""
    if precision not in PRECISIONS:
        raise ValueError(f"precision must be one of {PRECISIONS}, got {precision!r}")
    if precision == "fp32" or (precision == "auto" and not bf16_supported(device)):
        return torch.float32
    return torch.bfloat16


def use_channels_last(device: torch.device, dtype: torch.dtype) -> bool:
    """NHWC where it pays: cuDNN on GPUs, and oneDNN's bfloat16 kernels on CPUs. On a CPU in
    float32 it does not (docs/benchmarks.md)."""
    return device.type == "cuda" or dtype == torch.bfloat16


def configure_gpu(device: torch.device) -> None:
    """cuDNN autotuning and TF32 matmuls/convolutions for the float32 parts on GPUs.

    These are process-wide switches; a worker serves only this model, so that is intended.
    """
    if device.type == "cuda":
        torch.backends.cudnn.benchmark = True
        torch.backends.cuda.matmul.allow_tf32 = True
        torch.backends.cudnn.allow_tf32 = True
