"""Errors a user causes through a config or a command line."""


class ConfigError(ValueError):
    """A config, path or option that cannot run as given; the message names the fix."""
