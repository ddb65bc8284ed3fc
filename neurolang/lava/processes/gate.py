"""neurolang's ``SpikeGate``: the query half of spike-driven self-attention (SDSA),
``Y[l] = Q[l] * G`` for every token: the spikes of Q kept in the channels whose gate spiked.
"""

import numpy as np
from lava.magma.core.decorator import implements, requires, tag
from lava.magma.core.model.py.ports import PyInPort, PyOutPort
from lava.magma.core.model.py.type import LavaPyType
from lava.magma.core.process.ports.ports import InPort, OutPort
from lava.magma.core.resources import CPU
from lava.magma.core.sync.protocols.loihi_protocol import LoihiProtocol

from neurolang.lava.processes.schedule import ScheduledModel, ScheduledProcess, int_port


class SpikeGate(ScheduledProcess):
    """``Y = Q * G``: (L, D) spikes and the (1, D) gate spikes -> (L, D) spikes, over the
    real tokens (Q and G counted; the consumer of Y counts Y). A mask: no arithmetic on
    binary spikes (graded spikes multiply)."""

    def __init__(self, *, max_len, features, **kwargs):
        super().__init__(count_ports=2, **kwargs)
        self.q_in = InPort(shape=(max_len, features))
        self.g_in = InPort(shape=(1, features))
        self.s_out = OutPort(shape=(max_len, features))


class _SpikeGateBase(ScheduledModel):
    def gated(self, dtype):
        q, g = self.q_in.recv(), self.g_in.recv()
        out = np.zeros(self.s_out.shape, dtype=dtype)
        where = self.slot()
        if where is not None:
            self.count(0, where, q)
            self.count(1, where, g)
            n = where[2]
            out[:n] = q[:n] * g
        return out


@implements(proc=SpikeGate, protocol=LoihiProtocol)
@requires(CPU)
@tag("floating_pt")
class SpikeGateFloat(_SpikeGateBase):
    q_in: PyInPort = LavaPyType(PyInPort.VEC_DENSE, float)
    g_in: PyInPort = LavaPyType(PyInPort.VEC_DENSE, float)
    s_out: PyOutPort = LavaPyType(PyOutPort.VEC_DENSE, float)

    def run_spk(self):
        self.s_out.send(self.gated(np.float64))


@implements(proc=SpikeGate, protocol=LoihiProtocol)
@requires(CPU)
@tag("fixed_pt")
class SpikeGateFixed(_SpikeGateBase):
    q_in: PyInPort = int_port(PyInPort.VEC_DENSE)
    g_in: PyInPort = int_port(PyInPort.VEC_DENSE)
    s_out: PyOutPort = int_port(PyOutPort.VEC_DENSE)

    def run_spk(self):
        self.s_out.send(self.gated(np.int32))
