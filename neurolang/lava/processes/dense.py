"""neurolang's ``TokenDense``: a token-wise dense layer (one weight matrix for every token),
with an optional LayerNorm fused in (Lava's ``Dense`` takes a 1-D input only).
"""

import numpy as np
from lava.magma.core.decorator import implements, requires, tag
from lava.magma.core.model.py.ports import PyInPort, PyOutPort
from lava.magma.core.model.py.type import LavaPyType
from lava.magma.core.process.ports.ports import InPort, OutPort
from lava.magma.core.resources import CPU
from lava.magma.core.sync.protocols.loihi_protocol import LoihiProtocol

from neurolang.lava.processes.numerics import apply_layer_norm, quantise_current
from neurolang.lava.processes.schedule import ScheduledModel, ScheduledProcess, int_port


class TokenDense(ScheduledProcess):
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


class _TokenDenseBase(ScheduledModel):
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
            y = apply_layer_norm(y, *p["layer_norm"])
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


@implements(proc=TokenDense, protocol=LoihiProtocol)
@requires(CPU)
@tag("fixed_pt")
class TokenDenseFixed(_TokenDenseBase):
    a_in: PyInPort = int_port(PyInPort.VEC_DENSE)
    s_out: PyOutPort = int_port(PyOutPort.VEC_DENSE)

    def run_spk(self):
        x = self.a_in.recv()
        out = np.zeros(self.s_out.shape, dtype=np.int32)
        y, where = self.current(x)
        if y is not None:
            out[:where[2]] = quantise_current(y, self.proc_params["quant"])
        self.s_out.send(out)
