"""The errors of the plug-in mechanism (below both the registry and the option declarations) and of reading a
weights file (below every package that reads one)."""


class RegistryError(ValueError):
    """An unknown name, a duplicate registration or a bad option (the message names them)."""


class OptionError(RegistryError):
    """A bad option value or an unknown option name (the message names the option and what is allowed)."""


class ClassifierLoadError(ValueError):
    """A classifier or its weights file cannot be loaded; the message names the file and problem."""
