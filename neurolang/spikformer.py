from neurolang.models.spikformer import *  # noqa: F401,F403  (moving: removed at the end)
from neurolang.models.spikformer import Spikformer  # noqa: F401
