"""The one exception type that means "the user's input is wrong": the CLI prints it and exits 2."""


class UserError(Exception):
    """Bad input the user can fix; its message is shown as is, without a traceback."""
