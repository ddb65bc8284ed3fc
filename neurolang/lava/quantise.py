"""Fixed point: 8-bit weights, power-of-two current scales, the limits of Lava's bit-accurate
models (numpy only; ``docs/lava.md``, "Fixed point").

Token-wise layers (neurolang's ``TokenDense``): one weight scale per output feature,
``w_scale = max|W_row| / 127``, undone on the integer accumulator before the norm; the
classifier, in Lava's own ``Dense``, one scale in its mixed-sign format (even values in
[-254, 254]). Currents: a power-of-two ``a_scale`` from a bound on the layer's output
(``|current| * a_scale <= 2^16``, ``v_threshold * a_scale <= 2^16``).
"""

from __future__ import annotations

import math

import numpy as np

CURRENT_LIMIT = 2 ** 16  # |a_in| and vth (17-bit) budget of Lava's bit-accurate LIF
STREAM_LIMIT = 2 ** 23  # graded spikes of the residual stream: 24-bit signed payloads
POOLED_LIMIT = 2 ** 15


def pow2_floor(x: float) -> float:
    """The largest power of two not above ``x``."""
    return 2.0 ** math.floor(math.log2(x))


def summary(value) -> float | dict[str, float]:
    """A quantisation parameter for the report: a number, or a per-feature array's range."""
    if np.ndim(value) == 0:
        return float(value)
    return {"min": float(np.min(value)), "max": float(np.max(value))}


def _int8(weight: np.ndarray) -> tuple[np.ndarray, float]:
    """8-bit weights with one scale for the whole matrix (Lava ``Dense``)."""
    top = float(np.max(np.abs(weight)))
    scale = top / 127.0 if top > 0 else 1.0
    return np.clip(np.rint(weight / scale), -127, 127).astype(np.int32), scale


def _int8_rows(weight: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """8-bit weights with one scale per output feature (row): ``max|W_row| / 127``."""
    top = np.max(np.abs(weight), axis=1)
    scale = np.where(top > 0, top / 127.0, 1.0)
    return np.clip(np.rint(weight / scale[:, None]), -127, 127).astype(np.int32), scale


def dense_top(params, x_bound) -> float:
    """A bound on ``|Norm(x W^T + b)|`` of a token-wise dense layer whose input is bounded by
    ``x_bound`` (a LayerNorm's output: ``sqrt(D - 1) max|g| + max|b|``), before its gain."""
    if params["layer_norm"] is not None:
        g, b, _ = params["layer_norm"]
        d = params["weight"].shape[0]
        return math.sqrt(max(d - 1, 1)) * float(np.max(np.abs(g))) + float(np.max(np.abs(b)))
    return float(np.max(np.abs(params["weight"]).sum(1) * x_bound + np.abs(params["bias"])))


def value_scale(bound: float) -> float:
    """The power-of-two scale of graded values bounded by ``bound`` (24-bit payloads)."""
    return pow2_floor(STREAM_LIMIT / max(bound, 1e-12))


def current_scale(v_threshold: float, bound: float) -> float:
    """The power-of-two ``a_scale`` of a Lava LIF's input current bounded by ``bound``:
    ``|current| a_scale <= 2^16`` and ``v_threshold a_scale <= 2^16``."""
    return pow2_floor(min(CURRENT_LIMIT / v_threshold, CURRENT_LIMIT / max(bound, 1e-12)))


def quantise_dense(name, params, x_bound, x_scale, spec, fail, out_scale=None) -> dict:
    """A token-wise dense layer's integer weights and scales (``fail(name, why)`` if it cannot
    run in fixed point): its input has bound ``x_bound`` and ``x_scale`` units per 1.0, and
    it feeds Lava's LIF of specification ``spec`` (currents ``round(c * a_scale)``), or,
    with ``spec`` None, sends graded values ``round(y * out_scale)`` (into the residual
    stream, or to the readout)."""
    if spec is None and out_scale is None:
        fail(name, "fixed point needs Lava's LIF after each dense layer")
    if not math.isfinite(x_bound):
        fail(name, "fixed point needs a bounded input stream")
    w_q, w_scale = _int8_rows(params["weight"])
    if float(np.max(np.abs(w_q).sum(1))) * x_bound * x_scale >= 2.0 ** 53:
        fail(name, "its integer accumulator would exceed 2^53")
    if spec is None:
        a_scale, limit = float(out_scale), STREAM_LIMIT
    else:
        top = max(dense_top(params, x_bound) * params["gain"], 1e-12)
        a_scale, limit = current_scale(spec["v_threshold"], top), CURRENT_LIMIT
    return {"weight": w_q, "quant": {"w_scale": w_scale, "x_scale": x_scale,
                                     "a_scale": a_scale, "a_limit": limit}}


def quantise_stream_current(v_threshold: float, gain: float, bound: float,
                            x_scale: float) -> dict:
    """The current a stream process (encoder, residual) sends a Lava LIF reading the stream
    (bounded by ``bound``, ``x_scale`` units per 1.0): ``round(u * gain * a_scale)``."""
    a_scale = current_scale(v_threshold, bound * gain)
    return {"gain": float(gain), "a_scale": a_scale, "x_scale": float(x_scale),
            "a_limit": CURRENT_LIMIT}


def quantise_readout(params, cparams, x_bound, fail, name) -> None:
    """The pooled vector's scale (into ``params``) and the classifier's weights in Lava
    ``Dense``'s mixed-sign format with the scale that undoes both (into ``cparams``)."""
    if params["layer_norm"] is not None:
        g, b, _ = params["layer_norm"]
        d = params["features"]
        top = math.sqrt(max(d - 1, 1)) * float(np.max(np.abs(g))) + float(np.max(np.abs(b)))
    elif params["affine"] is not None:
        w, b = params["affine"]
        if not math.isfinite(x_bound):
            fail(name, "fixed point needs an integer input stream")
        top = float(np.max(np.abs(w).sum(1) * x_bound + np.abs(b)))
    else:
        if not math.isfinite(x_bound):
            fail(name, "fixed point needs an integer input stream")
        top = x_bound
    weight = cparams["weight"]
    q, c_scale = _int8(weight)
    q = 2 * q  # Lava Dense, mixed sign: even values in [-256, 254] (its lowest bit is dropped)
    c_scale /= 2.0
    row = max(float(np.max(np.abs(q).sum(1))), 1.0)
    p_limit = min(POOLED_LIMIT, (2 ** 31 - 1) / row)
    p_scale = pow2_floor(min(p_limit / max(top, 1e-12), 2.0 ** 20))
    params["quant"] = {"a_scale": p_scale, "a_limit": p_limit}
    cparams["weight"] = q
    cparams["out_scale"] = c_scale / p_scale
    cparams["quant"] = {"w_scale": c_scale, "p_scale": p_scale}


def snap_weights(flat) -> dict[str, float]:
    """Put every weight of a flattened NIR graph (``neurolang.nir.flatten``; its nodes are
    the nested graph's own objects, changed in place) on the 8-bit grid fixed point runs it
    with, so that the floating-point model and Lava's fixed point hold the same weights and
    differ only in the rounding of currents and of the stream: a token-wise layer's
    ``Affine``, one scale per row (:func:`_int8_rows`); the classifier after the mean over
    tokens (Lava's ``Dense``), one scale (:func:`_int8`). A BatchNorm's own ``Affine`` (on
    the embeddings, before a readout) stays as it is: fixed point computes it on the host.
    Returns, per changed layer, the largest change relative to the layer's largest weight."""
    import nir

    from neurolang.nir.nodes import TokenMean

    changed = {}
    for name, node in flat.nodes.items():
        if not isinstance(node, nir.Affine):
            continue
        if (node.metadata or {}).get("neurolang.op") == "batch_norm":
            continue
        w = np.asarray(node.weight, np.float64)
        sources = flat.sources(name)
        after_mean = any(isinstance(flat.nodes[s], TokenMean) for s in sources)
        if after_mean:
            q, scale = _int8(w)
            snapped = q * scale
        else:
            q, scales = _int8_rows(w)
            snapped = q * scales[:, None]
        top = float(np.max(np.abs(w))) or 1.0
        changed[name] = float(np.max(np.abs(snapped - w))) / top
        node.weight = snapped
    return changed
