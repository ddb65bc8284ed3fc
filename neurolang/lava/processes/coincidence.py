"""neurolang's ``CoincidenceSum``: the key-value half of spike-driven self-attention (SDSA),
``g = scale * sum over the real tokens of K * V`` per channel, one row per step.
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


class CoincidenceSum(ScheduledProcess):
    """``c = gain * scale * sum_l K[l] * V[l]`` over the real tokens: (L, D) and (L, D)
    spikes -> (1, D), the input current of the gate neuron (K and V counted).

    ``sops`` counts the accumulates by neurolang's rule (``docs/energy.md``): one per
    coincidence, a real token and channel where both K and V spiked (nonzero), summed over
    samples and steps. Fixed point (``quant``): ``round(c * a_scale)``, exact for binary
    spikes when ``scale * gain * a_scale`` is an integer.
    """

    def __init__(self, *, max_len, features, scale, gain=1.0, quant=None, **kwargs):
        super().__init__(scale=float(scale), gain=float(gain), quant=quant, count_ports=2,
                         **kwargs)
        self.sops = Var(shape=(1,), init=0)
        shape = (max_len, features)
        self.k_in, self.v_in = InPort(shape=shape), InPort(shape=shape)
        self.s_out = OutPort(shape=(1, features))


class _CoincidenceSumBase(ScheduledModel):
    sops: np.ndarray = float_var()

    def coincidences(self):
        k, v = self.k_in.recv(), self.v_in.recv()
        where = self.slot()
        if where is None:
            return None
        self.count(0, where, k)
        self.count(1, where, v)
        n = where[2]
        k, v = k[:n].astype(np.float64), v[:n].astype(np.float64)
        self.sops[0] += float(np.count_nonzero((k != 0) & (v != 0)))
        g = (k * v).sum(0, keepdims=True)  # integer counts for binary spikes
        return g * self.proc_params["scale"] * self.proc_params["gain"]


@implements(proc=CoincidenceSum, protocol=LoihiProtocol)
@requires(CPU)
@tag("floating_pt")
class CoincidenceSumFloat(_CoincidenceSumBase):
    k_in: PyInPort = LavaPyType(PyInPort.VEC_DENSE, float)
    v_in: PyInPort = LavaPyType(PyInPort.VEC_DENSE, float)
    s_out: PyOutPort = LavaPyType(PyOutPort.VEC_DENSE, float)

    def run_spk(self):
        g = self.coincidences()
        self.s_out.send(np.zeros(self.s_out.shape) if g is None else g)


@implements(proc=CoincidenceSum, protocol=LoihiProtocol)
@requires(CPU)
@tag("fixed_pt")
class CoincidenceSumFixed(_CoincidenceSumBase):
    k_in: PyInPort = int_port(PyInPort.VEC_DENSE)
    v_in: PyInPort = int_port(PyInPort.VEC_DENSE)
    s_out: PyOutPort = int_port(PyOutPort.VEC_DENSE)

    def run_spk(self):
        g = self.coincidences()
        out = (np.zeros(self.s_out.shape, dtype=np.int32) if g is None
               else quantise_current(g, self.proc_params["quant"]))
        self.s_out.send(out)
