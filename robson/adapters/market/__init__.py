"""Market data adapters: the bundled sample market and candle-file import."""
