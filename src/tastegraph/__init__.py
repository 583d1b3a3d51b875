"""tastegraph: an open visual discovery engine."""

__version__ = "0.1.0"
