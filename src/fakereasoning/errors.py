"""Errors a user can act on. The CLI prints them as one line (no traceback) and exits 1."""


class FakeReasoningError(Exception):
    """Base class for user-facing errors: the message alone must tell what is wrong and where."""


class ImageLoadError(FakeReasoningError, ValueError):
    """An image that cannot be used: too large, corrupt, truncated or of an unsupported format."""

    def __init__(self, source: str, problem: str) -> None:
        super().__init__(f"{source}: {problem}")
        self.source = source
        self.problem = problem


class DatasetError(FakeReasoningError):
    """A dataset that cannot be read at all (a missing root, an unreadable file)."""
