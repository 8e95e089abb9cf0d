"""harness: benchmark TensorFlow Lite inference on real embedded boards."""

__version__ = "0.1.0"
