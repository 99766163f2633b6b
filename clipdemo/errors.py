"""The two kinds of failure a user can be told about, as opposed to bugs.

Both carry a message written for a person: the CLI prints it on one line and exits with code 2,
the UI shows it with gr.Error. Anything else that escapes is a bug.
"""


class InputError(ValueError):
    """The user's input cannot be used as given (empty prompt, bad size, unreadable image, ...)."""


class ModelLoadError(RuntimeError):
    """A model could not be loaded. The message names the model and says how to fix it."""


class Cancelled(Exception):
    """The user pressed Stop: the generation ended early on purpose."""
