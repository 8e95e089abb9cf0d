"""Model files on the host: the example models, content hashes, and a first sanity check.

The board's runtime is the judge of what it can run; the host only makes sure a file is a whole,
valid TFLite flatbuffer before anything is pushed. That matters: tflite-runtime 2.14, still on
many boards, dies with SIGSEGV on a truncated model instead of raising, so the board could only
report a crash. LiteRT's flatbuffer verifier on the host turns that into a clear error.
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


def sha256(source: Path | bytes) -> str:
    """The hex SHA-256 of a file (read in 1 MiB blocks) or of bytes already in memory.

    The one content hash of host code: result files, board caches and device uploads all use it.
    """
    h = hashlib.sha256()
    if isinstance(source, bytes):
        h.update(source)
        return h.hexdigest()
    with open(source, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def check_header(path: Path) -> None:
    """ConfigError naming ``path`` unless it can be read and carries the TFLite identifier.

    The host's one header check, before any parsing or pushing (the board agent has its own).
    """
    try:
        with open(path, "rb") as f:
            head = f.read(8)
    except OSError as exc:
        raise ConfigError(f"cannot read model {path}: {exc.strerror}",
                          hint="pass the path of an existing .tflite file") from exc
    if len(head) < 8 or head[4:8] != TFLITE_IDENTIFIER:
        raise ConfigError(f"{path} is not a TFLite model (no TFL3 identifier at byte 4)",
                          hint="pass a .tflite file produced by the TFLite converter (or ai-edge-torch)")


def check_model(path: Path) -> str:
    """The model's sha256, after checking it exists, carries the TFLite identifier and verifies."""
    check_header(path)
    if not verified(path):
        raise ConfigError(f"{path} is truncated or corrupt (its flatbuffer does not verify)",
                          hint="copy or export the model again; compare its size with the original")
    return sha256(path)


def verified(path: Path) -> bool:
    """True when LiteRT's flatbuffer verifier accepts the file (ops are not resolved here)."""
    from ai_edge_litert.interpreter import Interpreter, OpResolverType

    try:
        Interpreter(model_content=path.read_bytes(),
                    experimental_op_resolver_type=OpResolverType.BUILTIN_WITHOUT_DEFAULT_DELEGATES)
    except ValueError as exc:
        return "not a valid flatbuffer" not in str(exc).lower()
    except Exception:
        return True  # anything else (an op, a delegate) is for the board's runtime to judge
    return True
