"""Regenerate the example models shipped in harness/example_models/ (needs TensorFlow).

Run from the repository root, in a venv with the ``models`` extra (tensorflow-cpu, scikit-learn)
plus ai-edge-litert::

    /tmp/tfvenv/bin/python harness/example_models/generate.py

It takes about two minutes on 2 cores and rewrites, next to this file:

- ``digits_cnn.tflite`` + ``digits_test.npz``: a small CNN trained on scikit-learn's ``load_digits``
  (real, labelled 8x8 images that ship with scikit-learn; nothing is downloaded).
- ``ds_cnn_kws.tflite`` + ``ds_cnn_kws_test.npz``: a keyword-spotting DS-CNN shaped like ARM's
  "Hello Edge" DS-CNN small, trained on a SYNTHETIC 12-class spectrogram task made here with numpy
  (no speech data is available offline).
- ``mobilenet_v1_025_96.tflite`` + ``mobilenet_v1_025_96_test.npz``: MobileNet v1 alpha 0.25 at
  96x96x3 with 2 classes (Visual Wake Words shape), built with ``weights=None`` and trained briefly
  on a SYNTHETIC 2-class image task made here with numpy.
- ``models.json``: the manifest (shapes, preprocessing, labels, provenance, accuracy measured with
  ai-edge-litert's Interpreter on the shipped test file, parameter count, size, sha256).

Every random source is seeded, oneDNN is disabled and TensorFlow op determinism is on, so a rerun on
the same TensorFlow version should give the same bytes; the test files are written as zip archives
with fixed timestamps for the same reason. Running and testing the harness never needs TensorFlow.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import json
import logging
import os
import sys
import zipfile
from pathlib import Path

# oneDNN reorders float reductions between runs; turn it off before TensorFlow is imported.
os.environ.setdefault("TF_ENABLE_ONEDNN_OPTS", "0")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np

log = logging.getLogger("generate")
OUT_DIR = Path(__file__).resolve().parent
SEED = 1234
MANIFEST_VERSION = 1

KWS_LABELS = ["_silence_", "_unknown_", "yes", "no", "up", "down", "left", "right", "on", "off", "stop", "go"]
KWS_FRAMES, KWS_COEFFS = 49, 10  # 1 s of audio at a 20 ms hop, 10 MFCCs (Hello Edge's input)
VWW_SIZE = 96


def _write_npz(path: Path, **arrays: np.ndarray) -> None:
    """Write an .npz whose bytes depend only on the arrays (np.savez stamps the current time)."""
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        for name, array in arrays.items():
            buf = io.BytesIO()
            np.lib.format.write_array(buf, np.ascontiguousarray(array), allow_pickle=False)
            info = zipfile.ZipInfo(f"{name}.npy", date_time=(1980, 1, 1, 0, 0, 0))
            info.compress_type = zipfile.ZIP_DEFLATED
            info.external_attr = 0o644 << 16
            zf.writestr(info, buf.getvalue())


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


# ---------------------------------------------------------------------------------------------- data


def digits_data() -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """scikit-learn digits as (x_train, y_train, x_test, y_test); x in 0..1, shape (N, 8, 8, 1)."""
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    digits = load_digits()
    # Pixel values are counts 0..16 of the original 4x4 blocks; /16 gives the documented 0..1 range.
    x = (digits.images.astype(np.float32) / 16.0)[..., None]
    y = digits.target.astype(np.int64)
    x_train, x_test, y_train, y_test = train_test_split(
        x, y, test_size=0.25, random_state=SEED, stratify=y)
    return x_train, y_train, x_test, y_test


def kws_data(n_per_class_train: int, n_per_class_test: int) -> tuple[np.ndarray, ...]:
    """Synthetic 12-class "spectrograms", shape (N, 49, 10, 1) float32, roughly zero mean.

    Each keyword class owns a fixed time-frequency template (two or three ridges whose frequency
    drifts over time, like formant tracks). A sample is its template shifted in time by up to
    +-6 frames, scaled by 0.6..1.4, with a random per-coefficient offset (channel colouring) and
    Gaussian noise. ``_silence_`` is noise only; ``_unknown_`` draws fresh random ridges per sample,
    so it overlaps the keywords now and then -- the task is learnable but not trivial.
    """
    rng = np.random.default_rng(SEED)
    t = np.arange(KWS_FRAMES)[:, None]
    f = np.arange(KWS_COEFFS)[None, :]

    def ridges(r: np.random.Generator) -> list[tuple[float, float, float, float, float]]:
        out = []
        for _ in range(int(r.integers(2, 4))):
            t0 = float(r.uniform(8, 30))
            dur = float(r.uniform(6, 16))
            f0 = float(r.uniform(0.5, KWS_COEFFS - 1.5))
            slope = float(r.uniform(-0.25, 0.25))
            amp = float(r.uniform(1.5, 3.0)) * (1 if r.random() < 0.8 else -1)
            out.append((t0, dur, f0, slope, amp))
        return out

    def render(spec: list[tuple[float, float, float, float, float]], shift: float) -> np.ndarray:
        img = np.zeros((KWS_FRAMES, KWS_COEFFS))
        for t0, dur, f0, slope, amp in spec:
            start = t0 + shift
            env = np.exp(-0.5 * ((t - (start + dur / 2)) / (dur / 2.5)) ** 2)
            centre = f0 + slope * (t - start)
            img += amp * env * np.exp(-0.5 * ((f - centre) / 0.9) ** 2)
        return img

    templates = {k: ridges(rng) for k in range(2, len(KWS_LABELS))}

    def sample(label: int) -> np.ndarray:
        img: np.ndarray
        if label == 0:
            img = np.zeros((KWS_FRAMES, KWS_COEFFS))
        elif label == 1:
            img = render(ridges(rng), 0.0)
        else:
            img = render(templates[label], float(rng.uniform(-6, 6))) * rng.uniform(0.6, 1.4)
        img = img + rng.normal(0, 0.3, size=(1, KWS_COEFFS))  # channel colouring
        img = img + rng.normal(0, 0.7 if label else 0.5, size=img.shape)
        return img.astype(np.float32)

    def split(n_per_class: int) -> tuple[np.ndarray, np.ndarray]:
        y = np.repeat(np.arange(len(KWS_LABELS)), n_per_class)
        rng.shuffle(y)
        x = np.stack([sample(int(label)) for label in y])[..., None]
        return x, y.astype(np.int64)

    x_train, y_train = split(n_per_class_train)
    x_test, y_test = split(n_per_class_test)
    return x_train, y_train, x_test, y_test


def vww_data(n_train: int, n_test: int) -> tuple[np.ndarray, ...]:
    """Synthetic 2-class "wake word" images, (N, 96, 96, 3) float32 in -1..1 (MobileNet scaling).

    Every image is a smooth colour gradient with two to five random rectangles of clutter. Class 1
    ("person") adds a figure: a round head above an upright elliptic body, of random colour,
    position and scale. Pixels are quantised to uint8 first, as a camera would deliver them, then
    mapped with x / 127.5 - 1.
    """
    rng = np.random.default_rng(SEED + 1)
    yy, xx = np.mgrid[0:VWW_SIZE, 0:VWW_SIZE].astype(np.float32) / VWW_SIZE

    def image(person: bool) -> np.ndarray:
        c0, c1 = rng.uniform(0, 255, size=(2, 3))
        angle = rng.uniform(0, 2 * np.pi)
        ramp = (np.cos(angle) * xx + np.sin(angle) * yy + 1.5) / 3.0
        img = c0 + (c1 - c0) * ramp[..., None]
        for _ in range(int(rng.integers(1, 4))):
            x0, y0 = rng.integers(0, VWW_SIZE - 8, size=2)
            w, h = rng.integers(6, 40, size=2)
            img[y0:y0 + h, x0:x0 + w] = rng.uniform(0, 255, size=3)
        if person:
            s = rng.uniform(0.9, 1.4)
            cx, cy = rng.uniform(0.3, 0.7), rng.uniform(0.4, 0.6)
            # Contrast with the background, as a person must have for a camera to see them at all.
            colour = 255.0 - (c0 + c1) / 2 + rng.uniform(-30, 30, size=3)
            body = ((xx - cx) / (0.09 * s)) ** 2 + ((yy - cy - 0.08 * s) / (0.2 * s)) ** 2 < 1
            head = ((xx - cx) / (0.06 * s)) ** 2 + ((yy - cy - 0.08 * s + 0.26 * s) / (0.06 * s)) ** 2 < 1
            img[body | head] = colour
        img = img + rng.normal(0, 6, size=img.shape)
        pixels = np.clip(np.round(img), 0, 255).astype(np.uint8)
        return (pixels.astype(np.float32) / 127.5 - 1.0).astype(np.float32)

    def split(n: int) -> tuple[np.ndarray, np.ndarray]:
        y = np.arange(n) % 2
        rng.shuffle(y)
        return np.stack([image(bool(label)) for label in y]), y.astype(np.int64)

    x_train, y_train = split(n_train)
    x_test, y_test = split(n_test)
    return x_train, y_train, x_test, y_test


# -------------------------------------------------------------------------------------------- models


def digits_model():  # -> keras.Model
    import keras
    from keras import layers

    inp = keras.Input(shape=(8, 8, 1), batch_size=1, name="image")
    x = layers.Conv2D(16, 3, padding="same", activation="relu")(inp)
    x = layers.Conv2D(32, 3, padding="same", activation="relu")(x)
    x = layers.MaxPooling2D(2)(x)
    x = layers.Conv2D(32, 3, padding="same", activation="relu")(x)
    x = layers.Flatten()(x)
    x = layers.Dense(64, activation="relu")(x)
    out = layers.Dense(10, activation="softmax", name="probabilities")(x)
    return keras.Model(inp, out, name="digits_cnn")


def ds_cnn_model():  # -> keras.Model
    """DS-CNN small of Zhang et al., "Hello Edge" (2017), as in ARM-software/ML-KWS-for-MCU."""
    import keras
    from keras import layers

    inp = keras.Input(shape=(KWS_FRAMES, KWS_COEFFS, 1), batch_size=1, name="mfcc")
    x = layers.Conv2D(64, (10, 4), strides=(2, 2), padding="same", use_bias=False)(inp)
    x = layers.BatchNormalization()(x)
    x = layers.ReLU()(x)
    for _ in range(4):
        x = layers.DepthwiseConv2D(3, padding="same", use_bias=False)(x)
        x = layers.BatchNormalization()(x)
        x = layers.ReLU()(x)
        x = layers.Conv2D(64, 1, use_bias=False)(x)
        x = layers.BatchNormalization()(x)
        x = layers.ReLU()(x)
    # Hello Edge pools over the whole 25x5 map; a fixed-size AveragePooling2D keeps that op in the graph.
    x = layers.AveragePooling2D(pool_size=(x.shape[1], x.shape[2]))(x)
    x = layers.Flatten()(x)
    out = layers.Dense(len(KWS_LABELS), activation="softmax", name="probabilities")(x)
    return keras.Model(inp, out, name="ds_cnn_kws")


def mobilenet_model():  # -> keras.Model
    import keras

    inp = keras.Input(shape=(VWW_SIZE, VWW_SIZE, 3), batch_size=1, name="image")
    # weights=None: never download ImageNet weights (no network, and they are for 1000 classes anyway).
    model = keras.applications.MobileNet(
        input_tensor=inp, alpha=0.25, weights=None, classes=2, classifier_activation="softmax")
    for layer in model.layers:
        if isinstance(layer, keras.layers.BatchNormalization):
            # A brief training run is ~100 steps: 0.99 momentum would leave the moving statistics
            # near their initial values and the inference model would disagree with training.
            layer.momentum = 0.9
    return model


def train(name: str, model, x: np.ndarray, y: np.ndarray, epochs: int, batch_size: int, lr: float) -> None:
    import keras

    model.compile(optimizer=keras.optimizers.Adam(lr), loss="sparse_categorical_crossentropy",
                  metrics=["accuracy"])
    # The batch-1 input shape is only for the exported graph; Keras trains with any batch size.
    history = model.fit(x, y, epochs=epochs, batch_size=batch_size, shuffle=True, verbose=0)
    log.info("%s: trained %d epochs, final training accuracy %.4f", name, epochs,
             history.history["accuracy"][-1])


# ---------------------------------------------------------------------------------------- convert


def convert(model, path: Path) -> None:
    """Float32 TFLite, no optimizations, batch 1 (the Keras Input carries batch_size=1)."""
    import tensorflow as tf

    converter = tf.lite.TFLiteConverter.from_keras_model(model)
    # Keras prints its export summary with print(); keep stdout clean for anyone piping this script.
    with contextlib.redirect_stdout(sys.stderr):
        flatbuffer = converter.convert()
    path.write_bytes(flatbuffer)


def litert_accuracy(path: Path, x: np.ndarray, y: np.ndarray) -> tuple[float, dict, dict]:
    """Top-1 accuracy of the .tflite file on (x, y) with ai-edge-litert, plus its I/O details."""
    from ai_edge_litert.interpreter import Interpreter

    interp = Interpreter(model_path=str(path))
    interp.allocate_tensors()
    (inp,), (out,) = interp.get_input_details(), interp.get_output_details()
    correct = 0
    for sample, label in zip(x, y, strict=True):
        interp.set_tensor(inp["index"], sample[None].astype(inp["dtype"]))
        interp.invoke()
        correct += int(np.argmax(interp.get_tensor(out["index"])[0]) == label)
    return correct / len(y), inp, out


def builtin_ops(path: Path) -> list[str]:
    """The model's operator names, as a TFLite Micro op resolver must register them."""
    from ai_edge_litert.interpreter import Interpreter, OpResolverType

    # Without the default XNNPACK delegate, so the list shows the model's ops, not "DELEGATE".
    interp = Interpreter(model_path=str(path),
                         experimental_op_resolver_type=OpResolverType.BUILTIN_WITHOUT_DEFAULT_DELEGATES)
    return sorted({op["op_name"] for op in interp._get_ops_details()})


def signature(path: Path) -> dict:
    from ai_edge_litert.interpreter import Interpreter

    sigs = Interpreter(model_path=str(path)).get_signature_list()
    key = "serving_default" if "serving_default" in sigs else next(iter(sigs))
    return {"key": key, "inputs": sigs[key]["inputs"], "outputs": sigs[key]["outputs"]}


def entry(name: str, model, x_test: np.ndarray, y_test: np.ndarray, *, description: str, task: str,
          input_range: list[float], preprocessing: str, labels: list[str], trained_on: str,
          weights: str, training: str) -> dict:
    """Convert, write the test file, measure, and describe one model for models.json."""
    tflite = OUT_DIR / f"{name}.tflite"
    test_file = OUT_DIR / ("digits_test.npz" if name == "digits_cnn" else f"{name}_test.npz")
    convert(model, tflite)
    _write_npz(test_file, x=x_test.astype(np.float32), y=y_test.astype(np.int64))
    acc, inp, out = litert_accuracy(tflite, x_test, y_test)
    import ai_edge_litert

    log.info("%s: litert accuracy %.4f on %d test samples, %d bytes", name, acc, len(y_test),
             tflite.stat().st_size)
    return {
        "file": tflite.name,
        "description": description,
        "task": task,
        "input": {
            "name": inp["name"],
            "shape": [int(d) for d in inp["shape"]],
            "dtype": np.dtype(inp["dtype"]).name,
            "range": input_range,
            "preprocessing": preprocessing,
        },
        "output": {
            "name": out["name"],
            "shape": [int(d) for d in out["shape"]],
            "dtype": np.dtype(out["dtype"]).name,
            "meaning": "softmax probabilities, one per label",
        },
        "signature": signature(tflite),
        "ops": builtin_ops(tflite),
        "labels": labels,
        "trained_on": trained_on,
        "weights": weights,
        "training": training,
        "test_file": test_file.name,
        "test_samples": len(y_test),
        "accuracy": round(acc, 6),
        "accuracy_measured_with": f"ai_edge_litert {ai_edge_litert.__version__} Interpreter "
                                  "(default op resolver), top-1 on test_file",
        "parameters": int(model.count_params()),
        "size_bytes": tflite.stat().st_size,
        "sha256": _sha256(tflite),
        "test_file_sha256": _sha256(test_file),
    }


def main() -> int:
    import keras
    import tensorflow as tf

    logging.basicConfig(level=logging.INFO, format="%(name)s: %(message)s")
    keras.utils.set_random_seed(SEED)
    tf.config.experimental.enable_op_determinism()
    models: dict[str, dict] = {}

    x_tr, y_tr, x_te, y_te = digits_data()
    model = digits_model()
    train("digits_cnn", model, x_tr, y_tr, epochs=40, batch_size=32, lr=2e-3)
    models["digits_cnn"] = entry(
        "digits_cnn", model, x_te, y_te,
        description="Small CNN digit classifier: 3 conv layers, max pool, 2 dense layers.",
        task="image classification, 10 classes (handwritten digits 0-9)",
        input_range=[0.0, 1.0],
        preprocessing="sklearn load_digits images (values 0..16) divided by 16, shape 8x8x1",
        labels=[str(d) for d in range(10)],
        trained_on="scikit-learn digits (load_digits, UCI optical handwritten digits): real data, "
                   f"75/25 stratified split with random_state={SEED}",
        weights="trained",
        training="40 epochs, Adam 2e-3, batch 32, on the 75% training split")

    keras.utils.set_random_seed(SEED)
    x_tr, y_tr, x_te, y_te = kws_data(n_per_class_train=200, n_per_class_test=16)
    model = ds_cnn_model()
    train("ds_cnn_kws", model, x_tr, y_tr, epochs=12, batch_size=32, lr=3e-3)
    models["ds_cnn_kws"] = entry(
        "ds_cnn_kws", model, x_te, y_te,
        description="Keyword-spotting DS-CNN in the style of ARM's Hello Edge DS-CNN small: conv 10x4 "
                    "stride 2 with 64 filters, 4 depthwise-separable blocks of 64 (BatchNorm folded), "
                    "average pool, dense 12, softmax.",
        task="keyword spotting, 12 classes (Speech Commands style label set)",
        input_range=[float(x_te.min()), float(x_te.max())],
        preprocessing="49 frames x 10 MFCC-like coefficients, roughly zero mean and unit scale; the "
                      "shipped test data are synthetic features, not MFCCs of real audio",
        labels=KWS_LABELS,
        trained_on="synthetic: numpy-generated 12-class time-frequency patterns plus noise (no speech "
                   "data); the labels name the classes only, the model has never heard a keyword",
        weights="trained",
        training="12 epochs, Adam 3e-3, batch 32, on 2400 synthetic samples (200 per class)")

    keras.utils.set_random_seed(SEED)
    x_tr, y_tr, x_te, y_te = vww_data(n_train=768, n_test=32)
    model = mobilenet_model()
    train("mobilenet_v1_025_96", model, x_tr, y_tr, epochs=8, batch_size=32, lr=2e-3)
    models["mobilenet_v1_025_96"] = entry(
        "mobilenet_v1_025_96", model, x_te, y_te,
        description="MobileNet v1, alpha 0.25, 96x96x3 input, 2 classes (Visual Wake Words shape), "
                    "from keras.applications.MobileNet(weights=None).",
        task="image classification, 2 classes (person / no person, Visual Wake Words style)",
        input_range=[-1.0, 1.0],
        preprocessing="RGB uint8 pixels mapped with x / 127.5 - 1 (MobileNet scaling), 96x96x3",
        labels=["no_person", "person"],
        trained_on="synthetic: numpy-generated 96x96 images (gradient background and box clutter; "
                   "'person' adds a head-and-body figure); no photographs, no pretrained weights",
        weights="trained briefly from random initialisation",
        training="8 epochs, Adam 2e-3, batch 32, on 768 synthetic images")

    manifest = {
        "manifest_version": MANIFEST_VERSION,
        "generated_by": "harness/example_models/generate.py",
        "generator_versions": {"tensorflow": tf.__version__, "keras": keras.__version__,
                               "numpy": np.__version__},
        "seed": SEED,
        "models": models,
    }
    (OUT_DIR / "models.json").write_text(json.dumps(manifest, indent=2) + "\n")
    total = sum((OUT_DIR / f).stat().st_size for f in os.listdir(OUT_DIR)
                if f.endswith((".tflite", ".npz", ".json")))
    log.info("wrote %d models to %s, %d bytes in all", len(models), OUT_DIR, total)
    return 0


if __name__ == "__main__":
    sys.exit(main())
