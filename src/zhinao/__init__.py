"""Zhinao (智脑): enterprise large-model platform."""
__version__ = "0.1.0"
