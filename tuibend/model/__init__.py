"""Timbre models: the decoder with its bend points, the model folder format, and import."""
