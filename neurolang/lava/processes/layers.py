"""Lava processes for what Lava's own ``Dense`` and ``LIF`` cannot compute.

Token layout: a process handles a whole sequence per step, ``(L, D)`` for ``L = max_len``
token slots; sample ``k`` of a run has ``lengths[k]`` real tokens in slots ``0..L_k-1`` and
the other slots carry zeros (or values nobody reads). Samples are pipelined back to back,
``time_steps`` steps each: global step ``g = time_step - 1 - latency`` belongs to sample
``g // T`` at step ``g % T``, where ``latency`` is the number of Lava ``Dense`` processes
(one step each) between the source and this process. Each process counts the spikes it
receives on its ``count`` ports over real tokens only, per sample and step (``counts``, read
back at the end: no rasters).

Every process has a ``floating_pt`` model (float64, the model's own arithmetic) and a
``fixed_pt`` model (integer spikes and currents for Lava's bit-accurate ``LIF``/``Dense``;
see ``neurolang.lava.network``). The classes here must stay importable under Python 3.10
without torch.
"""

import numpy as np
from lava.magma.core.decorator import implements, requires, tag
from lava.magma.core.model.py.model import PyLoihiProcessModel
from lava.magma.core.model.py.ports import PyInPort, PyOutPort
from lava.magma.core.model.py.type import LavaPyType
from lava.magma.core.process.ports.ports import InPort, OutPort
from lava.magma.core.process.process import AbstractProcess
from lava.magma.core.process.variable import Var
from lava.magma.core.resources import CPU
from lava.magma.core.sync.protocols.loihi_protocol import LoihiProtocol


def _float_var():
    return LavaPyType(np.ndarray, float)


def _int_port(kind):
    return LavaPyType(kind, np.int32, precision=24)


# --------------------------------------------------------------------------------------------
# Shared scheduling


class _Scheduled(AbstractProcess):
    """Base: the run's schedule (lengths, time_steps, latency) and the spike counters."""

    def __init__(self, *, lengths, time_steps, latency=0, count_ports=0, **params):
        lengths = np.asarray(lengths, dtype=np.int64)
        super().__init__(lengths=lengths, time_steps=int(time_steps), latency=int(latency),
                         **params)
        self.counts = Var(shape=(max(int(count_ports), 1), len(lengths), int(time_steps)),
                          init=0)


class _ScheduledModel(PyLoihiProcessModel):
    counts: np.ndarray = _float_var()

    def __init__(self, proc_params):
        super().__init__(proc_params)
        self.lengths = np.asarray(proc_params["lengths"], dtype=np.int64)
        self.steps = int(proc_params["time_steps"])
        self.latency = int(proc_params["latency"])

    def slot(self):
        """(sample, step, real tokens) of the current time step, or None when idle."""
        g = self.time_step - 1 - self.latency
        if g < 0 or g >= len(self.lengths) * self.steps:
            return None
        k = g // self.steps
        return k, g % self.steps, int(self.lengths[k])

    def count(self, port: int, where, spikes: np.ndarray) -> None:
        k, t, n = where
        self.counts[port, k, t] += float(np.count_nonzero(spikes[:n]))


# --------------------------------------------------------------------------------------------
# Encoder: token ids -> embedding (+ position) (+ Heaviside)


class TokenEncoder(_Scheduled):
    """Embedding lookup of each sample's tokens, plus position embedding, optionally spiked.

    ``ids`` (N, L) token ids; ``heaviside`` is None, ``">"`` or ``">="`` (spikes counted).
    Fixed point: a real-valued output is sent as graded integers ``round(x * x_scale)``.
    """

    def __init__(self, *, ids, embedding, position=None, heaviside=None, x_scale=1.0,
                 **kwargs):
        ids = np.asarray(ids, dtype=np.int64)
        shape = (ids.shape[1], embedding.shape[1])
        super().__init__(ids=ids, embedding=np.asarray(embedding, dtype=np.float64),
                         position=None if position is None else np.asarray(position, np.float64),
                         heaviside=heaviside, x_scale=float(x_scale),
                         count_ports=1 if heaviside else 0, **kwargs)
        self.s_out = OutPort(shape=shape)


class _TokenEncoderBase(_ScheduledModel):
    def encode(self):
        p = self.proc_params
        where = self.slot()
        shape = self.s_out.shape
        out = np.zeros(shape)
        if where is None:
            return out, None
        k, _, n = where
        x = p["embedding"][p["ids"][k, :n]]
        if p["position"] is not None:
            x = x + p["position"][:n]
        if p["heaviside"] == ">":
            x = (x > 0).astype(np.float64)
        elif p["heaviside"] == ">=":
            x = (x >= 0).astype(np.float64)
        out[:n] = x
        if p["heaviside"]:
            self.count(0, where, out)
        return out, where


@implements(proc=TokenEncoder, protocol=LoihiProtocol)
@requires(CPU)
@tag("floating_pt")
class TokenEncoderFloat(_TokenEncoderBase):
    s_out: PyOutPort = LavaPyType(PyOutPort.VEC_DENSE, float)

    def run_spk(self):
        self.s_out.send(self.encode()[0])


@implements(proc=TokenEncoder, protocol=LoihiProtocol)
@requires(CPU)
@tag("fixed_pt")
class TokenEncoderFixed(_TokenEncoderBase):
    s_out: PyOutPort = _int_port(PyOutPort.VEC_DENSE)

    def run_spk(self):
        x = self.encode()[0]
        if self.proc_params["heaviside"] is None:
            x = np.rint(x * self.proc_params["x_scale"])
        self.s_out.send(x.astype(np.int32))


# --------------------------------------------------------------------------------------------
# Token-wise dense layer (one weight matrix for every token), optional LayerNorm


class TokenDense(_Scheduled):
    """``c = gain * Norm(x W^T + b)`` for every real token; Norm is a LayerNorm or nothing.

    ``layer_norm``: None or ``(weight, bias, eps)``. ``count`` counts the input spikes.
    Fixed point (``quant``): ``weight`` holds 8-bit integers with scale ``w_scale``, the
    current is ``round(c * a_scale)`` (an integer input for Lava's bit-accurate LIF).
    """

    def __init__(self, *, weight, bias, max_len, layer_norm=None, gain=1.0, count=False,
                 quant=None, **kwargs):
        weight = np.asarray(weight)
        super().__init__(weight=weight, bias=np.asarray(bias, np.float64), layer_norm=layer_norm,
                         gain=float(gain), count=bool(count), quant=quant,
                         count_ports=1 if count else 0, **kwargs)
        self.a_in = InPort(shape=(max_len, weight.shape[1]))
        self.s_out = OutPort(shape=(max_len, weight.shape[0]))


def _layer_norm(y, weight, bias, eps):
    mean = y.mean(-1, keepdims=True)
    centred = y - mean
    var = (centred * centred).mean(-1, keepdims=True)
    return centred / np.sqrt(var + eps) * weight + bias


class _TokenDenseBase(_ScheduledModel):
    def current(self, x):
        """The layer's output (real numbers) for the real tokens of this step."""
        p = self.proc_params
        where = self.slot()
        if where is None:
            return None, None
        if p["count"]:
            self.count(0, where, x)
        n = where[2]
        q = p["quant"]
        if q is None:
            y = x[:n] @ p["weight"].T + p["bias"]
        else:
            # integer accumulation of 8-bit weights, then back to real units; float64 BLAS
            # is exact here (|sum| <= 127 * in_features * 2^23 < 2^53, checked by the plan)
            if getattr(self, "_weight_t", None) is None:
                self._weight_t = np.ascontiguousarray(p["weight"].T, dtype=np.float64)
            acc = x[:n].astype(np.float64) @ self._weight_t
            y = acc * (q["w_scale"] / q["x_scale"]) + p["bias"]
        if p["layer_norm"] is not None:
            y = _layer_norm(y, *p["layer_norm"])
        if p["gain"] != 1.0:
            y = y * p["gain"]
        return y, where


@implements(proc=TokenDense, protocol=LoihiProtocol)
@requires(CPU)
@tag("floating_pt")
class TokenDenseFloat(_TokenDenseBase):
    a_in: PyInPort = LavaPyType(PyInPort.VEC_DENSE, float)
    s_out: PyOutPort = LavaPyType(PyOutPort.VEC_DENSE, float)

    def run_spk(self):
        x = self.a_in.recv()
        out = np.zeros(self.s_out.shape)
        y, where = self.current(x)
        if y is not None:
            out[:where[2]] = y
        self.s_out.send(out)


def _quantise_current(y, q):
    limit = q["a_limit"]
    return np.clip(np.rint(y * q["a_scale"]), -limit, limit).astype(np.int32)


@implements(proc=TokenDense, protocol=LoihiProtocol)
@requires(CPU)
@tag("fixed_pt")
class TokenDenseFixed(_TokenDenseBase):
    a_in: PyInPort = _int_port(PyInPort.VEC_DENSE)
    s_out: PyOutPort = _int_port(PyOutPort.VEC_DENSE)

    def run_spk(self):
        x = self.a_in.recv()
        out = np.zeros(self.s_out.shape, dtype=np.int32)
        y, where = self.current(x)
        if y is not None:
            out[:where[2]] = _quantise_current(y, self.proc_params["quant"])
        self.s_out.send(out)


# --------------------------------------------------------------------------------------------
# Attention product of spike matrices


class SpikeAttention(_Scheduled):
    """``c = gain * scale * (Q K^T) V`` per head over the real tokens (Q, K, V counted).

    ``sops`` counts the accumulates of the product by neurolang's rule (``docs/energy.md``),
    from the spikes this process receives: ``[Q K^T, A V]`` summed over samples, steps and
    heads, where ``Q K^T`` costs ``sum_c nq_c nk_c`` (coincident nonzero spikes per channel)
    and ``A V`` costs, for every nonzero score ``A_ij``, the nonzero V spikes of token ``j``.
    """

    def __init__(self, *, max_len, features, num_heads, scale, gain=1.0, quant=None, **kwargs):
        super().__init__(num_heads=int(num_heads), scale=float(scale), gain=float(gain),
                         quant=quant, count_ports=3, **kwargs)
        self.sops = Var(shape=(2,), init=0)
        shape = (max_len, features)
        self.q_in, self.k_in = InPort(shape=shape), InPort(shape=shape)
        self.v_in = InPort(shape=shape)
        self.s_out = OutPort(shape=shape)


class _SpikeAttentionBase(_ScheduledModel):
    sops: np.ndarray = _float_var()

    def product(self):
        q, k, v = self.q_in.recv(), self.k_in.recv(), self.v_in.recv()
        where = self.slot()
        if where is None:
            return None, None
        for i, x in enumerate((q, k, v)):
            self.count(i, where, x)
        n = where[2]
        h = self.proc_params["num_heads"]
        d = q.shape[1] // h

        def split(x):  # (n, D) -> (h, n, d)
            return x[:n].astype(np.float64).reshape(n, h, d).transpose(1, 0, 2)

        qs, ks, vs = split(q), split(k), split(v)
        self.count_accumulates(qs != 0, ks != 0, vs != 0)
        if n > d:
            y = qs @ (ks.transpose(0, 2, 1) @ vs)
        else:
            y = (qs @ ks.transpose(0, 2, 1)) @ vs
        y = y.transpose(1, 0, 2).reshape(n, h * d)  # integer counts: exact either way
        return y * self.proc_params["scale"] * self.proc_params["gain"], where

    def count_accumulates(self, q: np.ndarray, k: np.ndarray, v: np.ndarray) -> None:
        """Add this step's accumulates (``q, k, v``: (heads, n, d) spike events) to ``sops``."""
        q, k, v = (x.astype(np.float64) for x in (q, k, v))
        self.sops[0] += float((q.sum(1) * k.sum(1)).sum())
        scores = q @ k.transpose(0, 2, 1)                       # (h, n, n) coincidences
        self.sops[1] += float(((scores != 0) @ v.sum(2)[..., None]).sum())


@implements(proc=SpikeAttention, protocol=LoihiProtocol)
@requires(CPU)
@tag("floating_pt")
class SpikeAttentionFloat(_SpikeAttentionBase):
    q_in: PyInPort = LavaPyType(PyInPort.VEC_DENSE, float)
    k_in: PyInPort = LavaPyType(PyInPort.VEC_DENSE, float)
    v_in: PyInPort = LavaPyType(PyInPort.VEC_DENSE, float)
    s_out: PyOutPort = LavaPyType(PyOutPort.VEC_DENSE, float)

    def run_spk(self):
        out = np.zeros(self.s_out.shape)
        y, where = self.product()
        if y is not None:
            out[:where[2]] = y
        self.s_out.send(out)


@implements(proc=SpikeAttention, protocol=LoihiProtocol)
@requires(CPU)
@tag("fixed_pt")
class SpikeAttentionFixed(_SpikeAttentionBase):
    q_in: PyInPort = _int_port(PyInPort.VEC_DENSE)
    k_in: PyInPort = _int_port(PyInPort.VEC_DENSE)
    v_in: PyInPort = _int_port(PyInPort.VEC_DENSE)
    s_out: PyOutPort = _int_port(PyOutPort.VEC_DENSE)

    def run_spk(self):
        out = np.zeros(self.s_out.shape, dtype=np.int32)
        y, where = self.product()
        if y is not None:
            out[:where[2]] = _quantise_current(y, self.proc_params["quant"])
        self.s_out.send(out)


# --------------------------------------------------------------------------------------------
# Residual sum


class Residual(_Scheduled):
    """``y = a + b`` (the residual stream plus a branch's spikes, which are counted).

    Fixed point: ``y = a + b * b_scale`` (the stream's integer units per spike)."""

    def __init__(self, *, shape, b_scale=1.0, **kwargs):
        super().__init__(count_ports=1, b_scale=float(b_scale), **kwargs)
        self.a_in, self.b_in = InPort(shape=shape), InPort(shape=shape)
        self.s_out = OutPort(shape=shape)


class _ResidualBase(_ScheduledModel):
    def add(self):
        a, b = self.a_in.recv(), self.b_in.recv()
        where = self.slot()
        if where is not None:
            self.count(0, where, b)
        return a + b


@implements(proc=Residual, protocol=LoihiProtocol)
@requires(CPU)
@tag("floating_pt")
class ResidualFloat(_ResidualBase):
    a_in: PyInPort = LavaPyType(PyInPort.VEC_DENSE, float)
    b_in: PyInPort = LavaPyType(PyInPort.VEC_DENSE, float)
    s_out: PyOutPort = LavaPyType(PyOutPort.VEC_DENSE, float)

    def run_spk(self):
        self.s_out.send(self.add())


@implements(proc=Residual, protocol=LoihiProtocol)
@requires(CPU)
@tag("fixed_pt")
class ResidualFixed(_ResidualBase):
    a_in: PyInPort = _int_port(PyInPort.VEC_DENSE)
    b_in: PyInPort = _int_port(PyInPort.VEC_DENSE)
    s_out: PyOutPort = _int_port(PyOutPort.VEC_DENSE)

    def run_spk(self):
        a, b = self.a_in.recv(), self.b_in.recv()
        where = self.slot()
        if where is not None:
            self.count(0, where, b)
        scale = int(self.proc_params["b_scale"])
        out = a.astype(np.int64) + b.astype(np.int64) * scale
        self.s_out.send(out.astype(np.int32))


# --------------------------------------------------------------------------------------------
# Neurons that Lava's LIF cannot compute (subtract reset, ">=")


class ReferenceLIF(_Scheduled):
    """neurolang's reference LIF step (``neurolang.neurons.lif_step``), reset per sample.

    ``decay_input``: ``h = v + (x - v)/tau``, else ``h = beta v + x``; fire ``h > th`` (or
    ``>=``); reset to 0 or subtract ``th``. Float only.
    """

    def __init__(self, *, shape, tau, beta, decay_input, v_threshold, reset, comparison,
                 **kwargs):
        super().__init__(tau=float(tau), beta=float(beta), decay_input=bool(decay_input),
                         v_threshold=float(v_threshold), reset=reset, comparison=comparison,
                         **kwargs)
        self.a_in = InPort(shape=shape)
        self.s_out = OutPort(shape=shape)
        self.v = Var(shape=shape, init=0)


@implements(proc=ReferenceLIF, protocol=LoihiProtocol)
@requires(CPU)
@tag("floating_pt")
class ReferenceLIFFloat(_ScheduledModel):
    a_in: PyInPort = LavaPyType(PyInPort.VEC_DENSE, float)
    s_out: PyOutPort = LavaPyType(PyOutPort.VEC_DENSE, float)
    v: np.ndarray = _float_var()

    def run_spk(self):
        x = self.a_in.recv()
        p = self.proc_params
        g = self.time_step - 1 - self.latency
        if g % self.steps == 0:
            self.v[:] = 0.0
        if p["decay_input"]:
            h = self.v + (x - self.v) / p["tau"]
        else:
            h = p["beta"] * self.v + x
        s = (h >= p["v_threshold"]) if p["comparison"] == ">=" else (h > p["v_threshold"])
        s = s.astype(np.float64)
        self.v[:] = h * (1 - s) if p["reset"] == "zero" else h - s * p["v_threshold"]
        self.s_out.send(s)


# --------------------------------------------------------------------------------------------
# Readout: norm, mean over real tokens (-> Lava Dense classifier) and logits per step


class TokenReadout(_Scheduled):
    """``p = mean over real tokens of Pre(x)``; Pre is a LayerNorm ``(w, b, eps)``, a
    token-wise affine ``(W, b)`` (an evaluation BatchNorm) or nothing. Sends (D,) values
    (fixed point: ``round(p * p_scale)``) to a graded Lava ``Dense``."""

    def __init__(self, *, max_len, features, layer_norm=None, affine=None, quant=None,
                 **kwargs):
        super().__init__(layer_norm=layer_norm, affine=affine, quant=quant, **kwargs)
        self.a_in = InPort(shape=(max_len, features))
        self.s_out = OutPort(shape=(features,))


class _TokenReadoutBase(_ScheduledModel):
    def pooled(self):
        x = self.a_in.recv()
        where = self.slot()
        if where is None:
            return np.zeros(self.s_out.shape)
        p = self.proc_params
        y = x[:where[2]].astype(np.float64)
        if p["quant"] is not None and p["quant"].get("x_scale", 1.0) != 1.0:
            y = y / p["quant"]["x_scale"]
        if p["layer_norm"] is not None:
            y = _layer_norm(y, *p["layer_norm"])
        elif p["affine"] is not None:
            y = y @ p["affine"][0].T + p["affine"][1]
        return y.sum(0) / max(where[2], 1)


@implements(proc=TokenReadout, protocol=LoihiProtocol)
@requires(CPU)
@tag("floating_pt")
class TokenReadoutFloat(_TokenReadoutBase):
    a_in: PyInPort = LavaPyType(PyInPort.VEC_DENSE, float)
    s_out: PyOutPort = LavaPyType(PyOutPort.VEC_DENSE, float)

    def run_spk(self):
        self.s_out.send(self.pooled())


@implements(proc=TokenReadout, protocol=LoihiProtocol)
@requires(CPU)
@tag("fixed_pt")
class TokenReadoutFixed(_TokenReadoutBase):
    a_in: PyInPort = _int_port(PyInPort.VEC_DENSE)
    s_out: PyOutPort = _int_port(PyOutPort.VEC_DENSE)

    def run_spk(self):
        self.s_out.send(_quantise_current(self.pooled(), self.proc_params["quant"]))


class LogitsReadout(_Scheduled):
    """Collects the classifier's output per sample and step: ``logits[k, t] = a * out_scale
    + bias`` (``out_scale`` undoes fixed-point scales; 1 in float)."""

    def __init__(self, *, classes, bias, out_scale=1.0, **kwargs):
        super().__init__(bias=np.asarray(bias, np.float64), out_scale=float(out_scale),
                         **kwargs)
        self.a_in = InPort(shape=(classes,))
        n, t = len(kwargs["lengths"]), int(kwargs["time_steps"])
        self.logits = Var(shape=(n, t, classes), init=0)


class _LogitsReadoutBase(_ScheduledModel):
    logits: np.ndarray = _float_var()

    def run_spk(self):
        a = self.a_in.recv()
        where = self.slot()
        if where is not None:
            p = self.proc_params
            value = a.astype(np.float64)
            if p["out_scale"] != 1.0:
                value = value * p["out_scale"]
            self.logits[where[0], where[1]] = value + p["bias"]


@implements(proc=LogitsReadout, protocol=LoihiProtocol)
@requires(CPU)
@tag("floating_pt")
class LogitsReadoutFloat(_LogitsReadoutBase):
    a_in: PyInPort = LavaPyType(PyInPort.VEC_DENSE, float)


@implements(proc=LogitsReadout, protocol=LoihiProtocol)
@requires(CPU)
@tag("fixed_pt")
class LogitsReadoutFixed(_LogitsReadoutBase):
    a_in: PyInPort = _int_port(PyInPort.VEC_DENSE)
