"""One exception type for every user-facing problem; the CLI prints its message on one line and exits 2."""


class ScvaeError(Exception):
    """A problem with the user's input (data, config, checkpoint, arguments), not a bug."""
