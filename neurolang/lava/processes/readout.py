"""neurolang's ``TokenReadout``: the norm and the mean over real tokens, sent to the
classifier (Lava's own ``Dense``).
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


class TokenReadout(ScheduledProcess):
    """``p = mean over real tokens of Pre(x)``; Pre is a LayerNorm ``(w, b, eps)``, a
    token-wise affine ``(W, b)`` (an evaluation BatchNorm) or nothing. Sends (D,) values
    (fixed point: ``round(p * p_scale)``) to a graded Lava ``Dense``."""

    def __init__(self, *, max_len, features, layer_norm=None, affine=None, quant=None,
                 **kwargs):
        super().__init__(layer_norm=layer_norm, affine=affine, quant=quant, **kwargs)
        self.a_in = InPort(shape=(max_len, features))
        self.s_out = OutPort(shape=(features,))


class _TokenReadoutBase(ScheduledModel):
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
            y = apply_layer_norm(y, *p["layer_norm"])
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
    a_in: PyInPort = int_port(PyInPort.VEC_DENSE)
    s_out: PyOutPort = int_port(PyOutPort.VEC_DENSE)

    def run_spk(self):
        self.s_out.send(quantise_current(self.pooled(), self.proc_params["quant"]))
