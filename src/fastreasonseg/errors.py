"""User-facing errors: raised for bad input or missing resources, printed by the CLI without a traceback."""


class FrsError(Exception):
    """An error whose message tells the user what went wrong and how to fix it."""
