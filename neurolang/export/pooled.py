from neurolang.models.pooled import *  # noqa: F401,F403  (moving: removed at the end)
from neurolang.models.pooled import (  # noqa: F401
    POOLED_FORMAT,
    PooledClassifierConfig,
    PooledSpikingClassifier,
    calibrate_rates,
)
