"""neurolang's ``Residual``: the residual sum of the token stream and a branch's spikes.
"""

import numpy as np
from lava.magma.core.decorator import implements, requires, tag
from lava.magma.core.model.py.ports import PyInPort, PyOutPort
from lava.magma.core.model.py.type import LavaPyType
from lava.magma.core.process.ports.ports import InPort, OutPort
from lava.magma.core.resources import CPU
from lava.magma.core.sync.protocols.loihi_protocol import LoihiProtocol

from neurolang.lava.processes.schedule import ScheduledModel, ScheduledProcess, int_port


class Residual(ScheduledProcess):
    """``y = a + b`` (the residual stream plus a branch's spikes, which are counted).

    Fixed point: ``y = a + b * b_scale`` (the stream's integer units per spike)."""

    def __init__(self, *, shape, b_scale=1.0, **kwargs):
        super().__init__(count_ports=1, b_scale=float(b_scale), **kwargs)
        self.a_in, self.b_in = InPort(shape=shape), InPort(shape=shape)
        self.s_out = OutPort(shape=shape)


class _ResidualBase(ScheduledModel):
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
    a_in: PyInPort = int_port(PyInPort.VEC_DENSE)
    b_in: PyInPort = int_port(PyInPort.VEC_DENSE)
    s_out: PyOutPort = int_port(PyOutPort.VEC_DENSE)

    def run_spk(self):
        a, b = self.a_in.recv(), self.b_in.recv()
        where = self.slot()
        if where is not None:
            self.count(0, where, b)
        scale = int(self.proc_params["b_scale"])
        out = a.astype(np.int64) + b.astype(np.int64) * scale
        self.s_out.send(out.astype(np.int32))
