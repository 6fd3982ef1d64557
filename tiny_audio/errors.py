"""The one exception type that the command line turns into a single clear line."""


class UserError(Exception):
    """A problem the user can fix: bad input, an unknown name, a missing package or key."""
