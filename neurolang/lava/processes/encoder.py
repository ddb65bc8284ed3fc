"""neurolang's ``TokenEncoder``: token ids -> embedding (+ position) (+ norm) (+ Heaviside).
"""

import numpy as np
from lava.magma.core.decorator import implements, requires, tag
from lava.magma.core.model.py.ports import PyOutPort
from lava.magma.core.model.py.type import LavaPyType
from lava.magma.core.process.ports.ports import OutPort
from lava.magma.core.resources import CPU
from lava.magma.core.sync.protocols.loihi_protocol import LoihiProtocol

from neurolang.lava.processes.numerics import apply_layer_norm, stream_current
from neurolang.lava.processes.schedule import ScheduledModel, ScheduledProcess, int_port


class TokenEncoder(ScheduledProcess):
    """Embedding lookup of each sample's tokens, plus position embedding, a norm of the
    embeddings, optionally spiked; computed on the host, as an input is.

    ``ids`` (N, L) token ids; ``norm`` is None, ``("affine", scale, shift)`` (an evaluation
    BatchNorm, ``x * scale + shift``) or ``("layer", weight, bias, eps)``; ``heaviside`` is
    None, ``">"`` or ``">="`` (spikes counted). Fixed point: a real-valued output is sent
    as graded integers ``round(x * x_scale)``, and with ``current`` also on ``c_out`` as the
    input current of the Lava LIF reading it (``neurolang.lava.processes.numerics
    .stream_current``).
    """

    def __init__(self, *, ids, embedding, position=None, heaviside=None, x_scale=1.0,
                 norm=None, current=None, **kwargs):
        ids = np.asarray(ids, dtype=np.int64)
        shape = (ids.shape[1], embedding.shape[1])
        super().__init__(ids=ids, embedding=np.asarray(embedding, dtype=np.float64),
                         position=None if position is None else np.asarray(position, np.float64),
                         heaviside=heaviside, x_scale=float(x_scale), norm=norm,
                         current=current, count_ports=1 if heaviside else 0, **kwargs)
        self.s_out = OutPort(shape=shape)
        self.c_out = OutPort(shape=shape)  # connected only when there is a current to send


class _TokenEncoderBase(ScheduledModel):
    def encode(self):
        p = self.proc_params
        where = self.slot()
        shape = self.s_out.shape
        out = np.zeros(shape)
        if where is None:
            return out, None
        k, _, n = where
        x = p["embedding"][p["ids"][k, :n]]
        if p["position"] is not None:
            x = x + p["position"][:n]
        norm = p["norm"]
        if norm is not None and norm[0] == "affine":
            # as a TokenDense of diag(scale) computes it: x diag(scale)^T + shift
            x = x @ np.diag(norm[1]).T + norm[2]
        elif norm is not None:
            x = apply_layer_norm(x, *norm[1:])
        if p["heaviside"] == ">":
            x = (x > 0).astype(np.float64)
        elif p["heaviside"] == ">=":
            x = (x >= 0).astype(np.float64)
        out[:n] = x
        if p["heaviside"]:
            self.count(0, where, out)
        return out, where


@implements(proc=TokenEncoder, protocol=LoihiProtocol)
@requires(CPU)
@tag("floating_pt")
class TokenEncoderFloat(_TokenEncoderBase):
    s_out: PyOutPort = LavaPyType(PyOutPort.VEC_DENSE, float)
    c_out: PyOutPort = LavaPyType(PyOutPort.VEC_DENSE, float)

    def run_spk(self):
        self.s_out.send(self.encode()[0])


@implements(proc=TokenEncoder, protocol=LoihiProtocol)
@requires(CPU)
@tag("fixed_pt")
class TokenEncoderFixed(_TokenEncoderBase):
    s_out: PyOutPort = int_port(PyOutPort.VEC_DENSE)
    c_out: PyOutPort = int_port(PyOutPort.VEC_DENSE)

    def run_spk(self):
        x = self.encode()[0]
        if self.proc_params["heaviside"] is None:
            x = np.rint(x * self.proc_params["x_scale"])
        x = x.astype(np.int32)
        self.s_out.send(x)
        if self.proc_params["current"] is not None:
            self.c_out.send(stream_current(x, self.proc_params["current"]))
