"""The few neural-network operations the lean runtime (lean.py) needs, in numpy and float32, so
that serving a model never imports torch: linear layers, 1-D convolution, the norms, the
activations and softmax. Each computes what its torch namesake computes, to float32 rounding.
"""

from __future__ import annotations

import math

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

# nn.RMSNorm's epsilon when none is given: float32's machine epsilon.
FLOAT32_EPS = float(np.finfo(np.float32).eps)
# Elements of GELU computed at a time: 512 KiB of float64, within a core's L2 cache.
GELU_BLOCK = 1 << 16
# erfc(z) ~ t * exp(-z^2 + P(t)) with t = 1 / (1 + z / 2): a Chebyshev fit whose relative error
# stays under 1.2e-7 for every z >= 0 (Press et al., Numerical Recipes, erfcc). Highest degree
# first, for Horner's rule.
ERFC_COEFFICIENTS = (
    0.17087277,
    -0.82215223,
    1.48851587,
    -1.13520398,
    0.27886807,
    -0.18628806,
    0.09678418,
    0.37409196,
    1.00002368,
    -1.26551223,
)


def linear(x: np.ndarray, weight: np.ndarray, bias: np.ndarray | None = None) -> np.ndarray:
    """x @ weight.T + bias over the last axis of x, as one matrix product (numpy would make one
    BLAS call per leading index of a 3-D x)."""
    out = x.reshape(-1, x.shape[-1]) @ weight.T
    if bias is not None:
        out += bias
    return out.reshape(*x.shape[:-1], weight.shape[0])


def conv1d(x: np.ndarray, weight: np.ndarray, bias: np.ndarray, stride: int = 1) -> np.ndarray:
    """Convolution over time with 'same' zero padding, by im2col: (B, T, C) time-major in,
    (B, T', O) out, `weight` (O, C, K) as torch holds it."""
    kernel = weight.shape[-1]
    padded = np.pad(x, ((0, 0), (kernel // 2, kernel // 2), (0, 0)))
    # (B, T', C, K): each output frame's input window, laid out as the weight's (C, K).
    windows = sliding_window_view(padded, kernel, axis=1)[:, ::stride]
    return linear(windows.reshape(*windows.shape[:2], -1), weight.reshape(len(weight), -1), bias)


def length_mask(lengths: np.ndarray, max_length: int) -> np.ndarray:
    """(B,) lengths -> (B, max_length) bool, True on real frames."""
    return np.arange(max_length)[None, :] < np.asarray(lengths)[:, None]


def layer_norm(
    x: np.ndarray, weight: np.ndarray, bias: np.ndarray, eps: float = 1e-5
) -> np.ndarray:
    centred = x - x.mean(axis=-1, keepdims=True)
    variance = np.mean(np.square(centred), axis=-1, keepdims=True)
    centred *= 1.0 / np.sqrt(variance + np.float32(eps))
    centred *= weight
    centred += bias
    return centred


def rms_norm(x: np.ndarray, weight: np.ndarray, eps: float = FLOAT32_EPS) -> np.ndarray:
    scale = 1.0 / np.sqrt(np.mean(np.square(x), axis=-1, keepdims=True) + np.float32(eps))
    return weight * (x * scale)


def erfc(z: np.ndarray) -> np.ndarray:
    """The complementary error function of z >= 0 (float64, relative error under 1.2e-7):
    numpy has no erf, and scipy would cost its import."""
    t = 1.0 / (1.0 + 0.5 * z)
    exponent = np.full_like(z, ERFC_COEFFICIENTS[0])
    for coefficient in ERFC_COEFFICIENTS[1:]:
        exponent *= t
        exponent += coefficient
    exponent -= np.square(z)
    return t * np.exp(exponent, out=exponent)


def gelu(x: np.ndarray) -> np.ndarray:
    """Exact GELU, x * Phi(x), as Whisper and nn.GELU compute it (with erf, not tanh). Phi is
    computed from the tail P(N > |x|) in float64, so it stays accurate where it is tiny; in
    blocks, so that the float64 temporaries stay in cache (three times faster)."""
    flat = np.ascontiguousarray(x, dtype=np.float32).reshape(-1)
    out = np.empty_like(flat)
    for start in range(0, flat.size, GELU_BLOCK):
        block = flat[start : start + GELU_BLOCK]
        phi = erfc(np.abs(block, dtype=np.float64) * (1 / math.sqrt(2)))
        phi *= 0.5  # P(N > |x|): Phi(x) for x < 0, 1 - Phi(x) for x >= 0
        np.subtract(1.0, phi, out=phi, where=block >= 0)
        phi *= block
        out[start : start + GELU_BLOCK] = phi
    return out.reshape(x.shape)


def silu(x: np.ndarray) -> np.ndarray:
    with np.errstate(over="ignore"):  # exp(-x) is inf for x < -88: x / inf is the right 0
        return x / (1.0 + np.exp(-x))


def softmax(x: np.ndarray) -> np.ndarray:
    """Softmax over the last axis, in place; -inf entries (masked) get weight 0."""
    x -= x.max(axis=-1, keepdims=True)
    np.exp(x, out=x)
    x /= x.sum(axis=-1, keepdims=True)
    return x
