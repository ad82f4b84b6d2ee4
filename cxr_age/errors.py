"""The one exception type a user is meant to see: a problem with their input, shown as one line."""


class CxrAgeError(Exception):
    """Bad input or an impossible request. Command-line tools print the message alone and exit with 2."""
