"""The one exception type the shells turn into a one-line message and an exit code."""


class CablebotError(Exception):
    """A problem the user can fix; its message is shown as is, without a traceback."""

    def __init__(self, message: str, exit_code: int = 1) -> None:
        super().__init__(message)
        self.exit_code = exit_code
