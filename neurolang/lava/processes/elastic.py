"""SpikeLM's elastic bi-spiking neuron as a Lava process (graded, signed spikes).

``neurolang.neurons.elastic_bispike_step``, reset at each sample's first step: with the
amplitude ``alpha[t]`` of step ``t`` and the carried membrane ``c`` (0 at ``t = 0``)::

    u = c + x;  s = alpha[t] * clip(rint(u / alpha[t]), -1, 1);  c = (0.25 * (alpha[t] - s)) * u

Lava has no such neuron (its ``LIF`` sends binary spikes and decays by constants). The spikes
are graded payloads ``{-alpha, 0, +alpha}`` on a float ``OutPort``: a Lava ``Dense`` reading
them needs ``num_message_bits > 0`` (with 0 it casts them to bool). Floating point only; the
network refuses fixed point for this kind. Importable under Python 3.10 without torch.
"""

import numpy as np
from lava.magma.core.decorator import implements, requires, tag
from lava.magma.core.model.py.ports import PyInPort, PyOutPort
from lava.magma.core.model.py.type import LavaPyType
from lava.magma.core.process.ports.ports import InPort, OutPort
from lava.magma.core.process.variable import Var
from lava.magma.core.resources import CPU
from lava.magma.core.sync.protocols.loihi_protocol import LoihiProtocol

from neurolang.lava.processes.schedule import ScheduledModel, ScheduledProcess


class ElasticBiSpike(ScheduledProcess):
    """A population of elastic bi-spiking neurons over ``shape = (L, D)`` token slots.

    ``alpha``: (time_steps,) spike amplitudes, one per step of a sample.
    """

    def __init__(self, *, shape, alpha, **kwargs):
        alpha = np.asarray(alpha, dtype=np.float64).reshape(-1)
        if alpha.shape != (int(kwargs["time_steps"]),):
            raise ValueError(f"alpha needs one value per time step, got {alpha.shape}")
        super().__init__(alpha=alpha, **kwargs)
        self.a_in = InPort(shape=shape)
        self.s_out = OutPort(shape=shape)
        self.carry = Var(shape=shape, init=0)


@implements(proc=ElasticBiSpike, protocol=LoihiProtocol)
@requires(CPU)
@tag("floating_pt")
class ElasticBiSpikeFloat(ScheduledModel):
    a_in: PyInPort = LavaPyType(PyInPort.VEC_DENSE, float)
    s_out: PyOutPort = LavaPyType(PyOutPort.VEC_DENSE, float)
    carry: np.ndarray = LavaPyType(np.ndarray, float)

    def run_spk(self):
        x = self.a_in.recv()
        where = self.slot()
        if where is None:  # before the first sample reaches this process, or after the last
            self.s_out.send(np.zeros(self.s_out.shape))
            return
        t = where[1]
        if t == 0:
            self.carry[:] = 0.0
        a = float(self.proc_params["alpha"][t])
        u = self.carry + x
        s = a * np.clip(np.rint(u / a), -1.0, 1.0)
        self.carry[:] = 0.25 * (a - s) * u
        self.s_out.send(s)
