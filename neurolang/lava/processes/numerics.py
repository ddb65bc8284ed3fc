"""Arithmetic several process models share: the LayerNorm, and currents as integers."""

import numpy as np


def apply_layer_norm(y, weight, bias, eps):
    """``(y - mean) / sqrt(var + eps) * weight + bias`` over the last axis (biased var)."""
    mean = y.mean(-1, keepdims=True)
    centred = y - mean
    var = (centred * centred).mean(-1, keepdims=True)
    return centred / np.sqrt(var + eps) * weight + bias


def quantise_current(y, q):
    """``round(y * a_scale)`` clipped to ``a_limit``, as int32 (fixed point)."""
    limit = q["a_limit"]
    return np.clip(np.rint(y * q["a_scale"]), -limit, limit).astype(np.int32)


def stream_current(x, q):
    """The input current of a Lava LIF reading the integer stream ``x`` (units of
    ``1 / x_scale``): ``round(x * gain * a_scale / x_scale)`` clipped to ``a_limit``, int32
    (fixed point; the LIF's input gain applied here, as a dense layer applies it)."""
    factor = q["gain"] * q["a_scale"] / q["x_scale"]
    limit = q["a_limit"]
    return np.clip(np.rint(x.astype(np.float64) * factor), -limit, limit).astype(np.int32)
