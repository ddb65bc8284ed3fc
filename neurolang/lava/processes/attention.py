"""neurolang's ``SpikeAttention``: SpikeBERT's attention product of spike matrices,
``(Q K^T) V`` per head (no softmax).
"""

import numpy as np
from lava.magma.core.decorator import implements, requires, tag
from lava.magma.core.model.py.ports import PyInPort, PyOutPort
from lava.magma.core.model.py.type import LavaPyType
from lava.magma.core.process.ports.ports import InPort, OutPort
from lava.magma.core.process.variable import Var
from lava.magma.core.resources import CPU
from lava.magma.core.sync.protocols.loihi_protocol import LoihiProtocol

from neurolang.lava.processes.numerics import quantise_current
from neurolang.lava.processes.schedule import ScheduledModel, ScheduledProcess, float_var, int_port


class SpikeAttention(ScheduledProcess):
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


class _SpikeAttentionBase(ScheduledModel):
    sops: np.ndarray = float_var()

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
    q_in: PyInPort = int_port(PyInPort.VEC_DENSE)
    k_in: PyInPort = int_port(PyInPort.VEC_DENSE)
    v_in: PyInPort = int_port(PyInPort.VEC_DENSE)
    s_out: PyOutPort = int_port(PyOutPort.VEC_DENSE)

    def run_spk(self):
        out = np.zeros(self.s_out.shape, dtype=np.int32)
        y, where = self.product()
        if y is not None:
            out[:where[2]] = quantise_current(y, self.proc_params["quant"])
        self.s_out.send(out)
