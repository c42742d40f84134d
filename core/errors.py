"""The one exception type the product raises for bad input or setup problems."""


class DPHMError(Exception):
    """A problem the user can fix; the message names the file and what is wrong."""
