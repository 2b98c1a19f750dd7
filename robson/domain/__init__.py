"""Pure trading rules: money, sizing, stops, guards, intent and operation state. No I/O."""
