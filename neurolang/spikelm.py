from neurolang.models.spikelm import *  # noqa: F401,F403  (moving: removed at the end)
from neurolang.models.spikelm import SpikeLM  # noqa: F401
