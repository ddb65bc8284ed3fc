"""The one error type of the data layer."""

from __future__ import annotations

from neurolang.errors import NeurolangError


class DataError(NeurolangError, ValueError):
    """A data set, file, column or label a user gave is wrong; the message says how to fix it.

    Raised while loading, before any training starts.
    """
