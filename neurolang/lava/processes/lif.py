"""neurolang's ``ReferenceLIF``: the neurons Lava's LIF cannot compute (subtract reset,
``>=``), with neurolang's reference formula.
"""

import numpy as np
from lava.magma.core.decorator import implements, requires, tag
from lava.magma.core.model.py.ports import PyInPort, PyOutPort
from lava.magma.core.model.py.type import LavaPyType
from lava.magma.core.process.ports.ports import InPort, OutPort
from lava.magma.core.process.variable import Var
from lava.magma.core.resources import CPU
from lava.magma.core.sync.protocols.loihi_protocol import LoihiProtocol

from neurolang.lava.processes.schedule import ScheduledModel, ScheduledProcess, float_var


class ReferenceLIF(ScheduledProcess):
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
class ReferenceLIFFloat(ScheduledModel):
    a_in: PyInPort = LavaPyType(PyInPort.VEC_DENSE, float)
    s_out: PyOutPort = LavaPyType(PyOutPort.VEC_DENSE, float)
    v: np.ndarray = float_var()

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
