"""Whether a model can fit a serial board, judged on the host before anything is uploaded.

The model's size against the device's largest model (HELLO's max_model_bytes), and the TFLite
Micro arena it needs, measured on this host (harness.models.arena), against the device's arena:
what surely cannot fit is refused with the limit and the fix, what might is left to the device.
"""

from __future__ import annotations

import logging
import threading
from pathlib import Path
from typing import Any

from device_agents.wire import serial_frames as sf
from harness.errors import AgentError, HarnessError
from harness.models.arena import ArenaFit, measure_arena
from harness.models.files import sha256

log = logging.getLogger(__name__)

# Arenas by model sha256, for every board of this process: the bisection takes seconds and depends
# only on the model and this host's TFLite Micro. None: the host cannot measure it (the device judges).
_ARENAS: dict[str, ArenaFit | None] = {}
_ARENAS_LOCK = threading.Lock()


def fit_check(target: str, path: Path, model: bytes, info: dict[str, Any], emulator: bool) -> None:
    """Refuse before uploading what cannot fit, naming the limit and the fix."""
    limit = int(info["max_model_bytes"])
    builtin = bool(info["flags"] & sf.FLAG_BUILTIN)
    if limit and len(model) > limit:
        raise AgentError(f"{path.name} is {len(model)} bytes, larger than the {limit} bytes the device "
                         "accepts; not uploading", code="model_too_large", target=target,
                         hint="use a smaller or int8-quantized model, or a board with more flash"
                              + (" (max_model in targets.toml for the emulator)" if emulator else ""))
    if not limit and not builtin:
        raise AgentError("the device accepts no uploads and has no built-in model", code="unsupported",
                         target=target, hint="flash firmware built with upload support")
    arena = int(info["arena_bytes"])
    if not arena:
        return
    fit = _arena(target, path, model)
    if fit is None:
        return
    # The host's TFLite Micro is a 64-bit build. An emulator running that same build on this
    # host needs exactly as much. A 32-bit MCU needs less (pointers in the arena's structs
    # halve) but never less than half (tensor data keeps its size): refuse only what surely
    # cannot fit there, and let the device judge the rest.
    need = fit.arena_bytes
    same_build = bool(info["flags"] & sf.FLAG_EMULATED) and info["tflm_version"] == fit.tflm_version
    floor = need if same_build else need // 2
    if floor > arena:
        how = "" if same_build else f" (a 32-bit MCU needs at least {floor})"
        raise AgentError(f"{path.name} needs a {need}-byte TFLite Micro arena, measured on this host{how}; "
                         f"the device has {arena} bytes; not uploading", code="arena_too_small", target=target,
                         hint="raise arena in targets.toml (emulator) or the firmware's arena, or use a "
                              "smaller/int8 model")
    if need > arena:
        log.warning("%s: %s needs %d arena bytes on this 64-bit host, the device has %d; uploading, the "
                    "device's 32-bit build may need less and will tell", target, path.name, need, arena)

def _arena(target: str, path: Path, model: bytes) -> ArenaFit | None:
    """The model's TFLite Micro arena, measured once per model content in this process."""
    digest = sha256(model)
    with _ARENAS_LOCK:  # two boards checking one model wait for one measurement
        if digest not in _ARENAS:
            try:
                _ARENAS[digest] = measure_arena(path)
            except HarnessError as exc:
                # The device is the judge of ops and types (its firmware may register more ops).
                log.info("%s: no arena pre-check for %s: %s", target, path.name, exc)
                _ARENAS[digest] = None
        return _ARENAS[digest]
