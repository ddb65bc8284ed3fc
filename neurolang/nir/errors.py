"""The one error of neurolang's NIR files (torch-free, no dependencies)."""


class NIRError(ValueError):
    """A NIR file is unreadable, malformed, inconsistent, or uses something unsupported."""
