"""Model files on the host: the example models, content hashes, and a first sanity check.

The board's runtime is the judge of a model; this check only catches what needs no runtime
(a missing file, a file that is not a TFLite flatbuffer) so the error comes before anything is
pushed, and names the file.
"""

from __future__ import annotations

import hashlib
from importlib import resources
from pathlib import Path

from harness.errors import ConfigError

TFLITE_IDENTIFIER = b"TFL3"  # flatbuffer file identifier, bytes 4..8 of every .tflite file


def example_models() -> list[Path]:
    """The example models shipped with harness, in a stable order."""
    root = Path(str(resources.files("harness").joinpath("example_models")))
    return sorted(root.glob("*.tflite"))


def sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def check_model(path: Path) -> str:
    """The model's sha256, after checking it exists and carries the TFLite identifier."""
    try:
        with open(path, "rb") as f:
            head = f.read(8)
    except OSError as exc:
        raise ConfigError(f"cannot read model {path}: {exc.strerror}", hint="check the --model path") from exc
    if len(head) < 8 or head[4:8] != TFLITE_IDENTIFIER:
        raise ConfigError(f"{path} is not a TFLite model (no TFL3 identifier at byte 4)",
                          hint="pass a .tflite file produced by the TFLite converter")
    return sha256(path)
