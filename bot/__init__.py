"""Conversant: keeps a brand in the conversation on social platforms."""
from importlib.metadata import PackageNotFoundError, version

DISTRIBUTION = "conversant-slack"  # the package index name; the command is `conversant`

try:
    __version__ = version(DISTRIBUTION)
except PackageNotFoundError:  # running from a source tree that was never installed
    __version__ = "0+unknown"
