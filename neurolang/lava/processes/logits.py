"""neurolang's ``LogitsReadout``: the classifier's logits of every sample and step, read back
at the end of a run.
"""

import numpy as np
from lava.magma.core.decorator import implements, requires, tag
from lava.magma.core.model.py.ports import PyInPort
from lava.magma.core.model.py.type import LavaPyType
from lava.magma.core.process.ports.ports import InPort
from lava.magma.core.process.variable import Var
from lava.magma.core.resources import CPU
from lava.magma.core.sync.protocols.loihi_protocol import LoihiProtocol

from neurolang.lava.processes.schedule import ScheduledModel, ScheduledProcess, float_var, int_port


class LogitsReadout(ScheduledProcess):
    """Collects the classifier's output per sample and step: ``logits[k, t] = a * out_scale
    + bias`` (``out_scale`` undoes fixed-point scales; 1 in float)."""

    def __init__(self, *, classes, bias, out_scale=1.0, **kwargs):
        super().__init__(bias=np.asarray(bias, np.float64), out_scale=float(out_scale),
                         **kwargs)
        self.a_in = InPort(shape=(classes,))
        n, t = len(kwargs["lengths"]), int(kwargs["time_steps"])
        self.logits = Var(shape=(n, t, classes), init=0)


class _LogitsReadoutBase(ScheduledModel):
    logits: np.ndarray = float_var()

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
    a_in: PyInPort = int_port(PyInPort.VEC_DENSE)
