"""The one error of neurolang's NIR files (torch-free, no dependencies)."""

from neurolang.errors import NeurolangError


class NIRError(NeurolangError, ValueError):
    """A NIR file is unreadable, malformed, inconsistent, or uses something unsupported."""
