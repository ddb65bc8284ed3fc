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
