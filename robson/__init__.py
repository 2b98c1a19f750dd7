"""robson: a command-line trading risk assistant for Binance spot traders."""

__version__ = "0.1.0"
