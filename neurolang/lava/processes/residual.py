"""neurolang's ``Residual``: the residual sum of the token stream and a branch's output.
"""

import numpy as np
from lava.magma.core.decorator import implements, requires, tag
from lava.magma.core.model.py.ports import PyInPort, PyOutPort
from lava.magma.core.model.py.type import LavaPyType
from lava.magma.core.process.ports.ports import InPort, OutPort
from lava.magma.core.resources import CPU
from lava.magma.core.sync.protocols.loihi_protocol import LoihiProtocol

from neurolang.lava.processes.numerics import stream_current
from neurolang.lava.processes.schedule import ScheduledModel, ScheduledProcess, int_port


class Residual(ScheduledProcess):
    """``y = a + b`` (the residual stream plus a branch's spikes, which are counted, or a
    branch's real-valued output: a membrane shortcut ``u + Norm(W s)``).

    Fixed point: ``y = a + b * b_scale`` (the stream's integer units per unit of ``b``), and
    with ``current`` also, on ``c_out``, the input current of the Lava LIF reading the sum
    (``neurolang.lava.processes.numerics.stream_current``)."""

    def __init__(self, *, shape, b_scale=1.0, current=None, **kwargs):
        super().__init__(count_ports=1, b_scale=float(b_scale), current=current, **kwargs)
        self.a_in, self.b_in = InPort(shape=shape), InPort(shape=shape)
        self.s_out = OutPort(shape=shape)
        self.c_out = OutPort(shape=shape)  # connected only when there is a current to send


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
    c_out: PyOutPort = LavaPyType(PyOutPort.VEC_DENSE, float)

    def run_spk(self):
        self.s_out.send(self.add())


@implements(proc=Residual, protocol=LoihiProtocol)
@requires(CPU)
@tag("fixed_pt")
class ResidualFixed(_ResidualBase):
    a_in: PyInPort = int_port(PyInPort.VEC_DENSE)
    b_in: PyInPort = int_port(PyInPort.VEC_DENSE)
    s_out: PyOutPort = int_port(PyOutPort.VEC_DENSE)
    c_out: PyOutPort = int_port(PyOutPort.VEC_DENSE)

    def run_spk(self):
        a, b = self.a_in.recv(), self.b_in.recv()
        where = self.slot()
        if where is not None:
            self.count(0, where, b)
        scale = int(self.proc_params["b_scale"])
        out = (a.astype(np.int64) + b.astype(np.int64) * scale).astype(np.int32)
        self.s_out.send(out)
        if self.proc_params["current"] is not None:
            self.c_out.send(stream_current(out, self.proc_params["current"]))
