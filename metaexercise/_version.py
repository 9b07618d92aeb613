"""The toolkit's version, at the bottom of the house so that every floor can read it."""

__version__ = "0.1.0"
