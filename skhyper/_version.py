"""The package version, in one place (read by the build and by pickles)."""

__version__ = "0.2.0.dev0"
