"""What every neurolang Lava process shares: the run's schedule, spike counters, port types.

Token layout: a process handles a whole sequence per step, ``(L, D)`` for ``L = max_len``
token slots; sample ``k`` of a run has ``lengths[k]`` real tokens in slots ``0..L_k-1`` and
the other slots carry zeros (or values nobody reads). Samples are pipelined back to back,
``time_steps`` steps each: global step ``g = time_step - 1 - latency`` belongs to sample
``g // T`` at step ``g % T``, where ``latency`` is the number of Lava ``Dense`` processes
(one step each) between the source and this process. Each process counts the spikes it
receives on its ``count`` ports over real tokens only, per sample and step (``counts``, read
back at the end: no rasters).

Every process has a ``floating_pt`` model (float64, the model's own arithmetic) and most have
a ``fixed_pt`` model (integer spikes and currents for Lava's bit-accurate ``LIF``/``Dense``;
see ``neurolang.lava.quantise``). Importable under Python 3.10 without torch.
"""

import numpy as np
from lava.magma.core.model.py.model import PyLoihiProcessModel
from lava.magma.core.model.py.type import LavaPyType
from lava.magma.core.process.process import AbstractProcess
from lava.magma.core.process.variable import Var


def float_var():
    """A float64 Var or port of a process model."""
    return LavaPyType(np.ndarray, float)


def int_port(kind):
    """A 24-bit integer port of a fixed-point process model (Lava's graded payloads)."""
    return LavaPyType(kind, np.int32, precision=24)


class ScheduledProcess(AbstractProcess):
    """Base: the run's schedule (lengths, time_steps, latency) and the spike counters."""

    def __init__(self, *, lengths, time_steps, latency=0, count_ports=0, **params):
        lengths = np.asarray(lengths, dtype=np.int64)
        super().__init__(lengths=lengths, time_steps=int(time_steps), latency=int(latency),
                         **params)
        self.counts = Var(shape=(max(int(count_ports), 1), len(lengths), int(time_steps)),
                          init=0)


class ScheduledModel(PyLoihiProcessModel):
    """Base of the process models: where the current time step falls, and counting."""

    counts: np.ndarray = float_var()

    def __init__(self, proc_params):
        super().__init__(proc_params)
        self.lengths = np.asarray(proc_params["lengths"], dtype=np.int64)
        self.steps = int(proc_params["time_steps"])
        self.latency = int(proc_params["latency"])

    def slot(self):
        """(sample, step, real tokens) of the current time step, or None when idle."""
        g = self.time_step - 1 - self.latency
        if g < 0 or g >= len(self.lengths) * self.steps:
            return None
        k = g // self.steps
        return k, g % self.steps, int(self.lengths[k])

    def count(self, port: int, where, spikes: np.ndarray) -> None:
        k, t, n = where
        self.counts[port, k, t] += float(np.count_nonzero(spikes[:n]))
