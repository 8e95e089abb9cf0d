"""Messages that used to mislead, each reproduced as a user met it: the line now names the real
cause, the file, and the fix."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.agentrun import DIGITS, KWS, QUICK, harness, json_objects, run_agent
from tests.test_run import project_dir


def test_a_pipeline_calling_sys_exit_is_named_not_an_xnnpack_line(tmp_path: Path) -> None:
    app = tmp_path / "quits.py"
    app.write_text("import sys\n\ndef preprocess(raw):\n    sys.exit(3)\n")
    p = harness("run", "--target", "local", "--model", str(DIGITS), "--pipeline", str(app), *QUICK,
                "--results", "r", "--json", cwd=project_dir(tmp_path))
    assert p.returncode == 1
    (o,) = json_objects(p.stdout)
    assert o["error"]["code"] == "pipeline" and o["error"]["file"] == "quits.py"
    assert "the pipeline quits.py called sys.exit(3) at line 4 in preprocess" in o["error"]["message"]
    assert "XNNPACK" not in p.stderr


def test_sys_exit_at_import_of_the_pipeline(tmp_path: Path) -> None:
    app = tmp_path / "early.py"
    app.write_text("import sys\nsys.exit('no config')\n")
    msgs, status, _ = run_agent("run", "--model", str(DIGITS), "--pipeline", str(app), *QUICK)
    assert status == 1
    err = msgs[-1]
    assert err["type"] == "error" and err["code"] == "pipeline" and err["file"] == "early.py"
    assert "called sys.exit('no config') at line 2 in <module>" in err["message"]


def test_a_preprocess_returning_a_string_blames_the_pipeline_not_inputs(tmp_path: Path) -> None:
    app = tmp_path / "texty.py"
    app.write_text("def preprocess(raw):\n    return 'an image, I promise'\n")
    p = harness("run", "--target", "local", "--model", str(DIGITS), "--pipeline", str(app), *QUICK,
                "--results", "r", "--json", cwd=project_dir(tmp_path))
    assert p.returncode == 1
    (o,) = json_objects(p.stdout)
    err = o["error"]
    assert err["code"] == "pipeline" and err["file"] == "texty.py"
    assert err["message"].startswith("preprocess of texty.py returned a str for input ")
    assert "--inputs" not in err["message"] and "--inputs" not in (err["hint"] or "")
    assert "pipeline" in err["hint"]


def test_a_preprocess_returning_the_wrong_dtype_names_dtype_and_shape(tmp_path: Path) -> None:
    app = tmp_path / "f64.py"
    app.write_text("import numpy as np\n\ndef preprocess(raw):\n    return np.zeros((1, 8, 8, 1))\n")
    msgs, status, _ = run_agent("run", "--model", str(DIGITS), "--pipeline", str(app), *QUICK)
    assert status == 1 and msgs[-1]["code"] == "pipeline"
    assert "returned a float64 array of shape (1, 8, 8, 1) for input" in msgs[-1]["message"]


def test_a_bad_model_beside_good_ones_is_bad_model_with_its_file_and_hint(tmp_path: Path) -> None:
    bad = tmp_path / "photo.tflite"
    bad.write_bytes(b"\xff\xd8\xff\xe0 a JPEG, not a model")
    p = harness("run", "--target", "local", "--model", str(bad), "--model", str(KWS), *QUICK,
                "--results", "r", "--json", cwd=project_dir(tmp_path))
    assert p.returncode == 1
    objs = {o["model"]: o for o in json_objects(p.stdout)}
    err = objs["photo.tflite"]["error"]
    assert err["code"] == "bad_model" and err["file"] == "photo.tflite"
    assert "not a TFLite model" in err["message"] and "TFLite converter" in err["hint"]
    assert objs["ds_cnn_kws.tflite"]["complete"] is True and objs["ds_cnn_kws.tflite"]["error"] is None


def test_the_error_object_carries_the_hint_the_readme_promises(tmp_path: Path) -> None:
    """README's JSON table: error is {code, message, file, hint}; a board's error gets the host's hint."""
    cut = tmp_path / "custom.tflite"
    from tests import badmodels

    badmodels.with_unknown_custom_op(KWS, cut)
    p = harness("run", "--target", "local", "--model", str(cut), *QUICK, "--results", "r", "--json",
                cwd=project_dir(tmp_path))
    (o,) = json_objects(p.stdout)
    assert set(o["error"]) == {"code", "message", "file", "hint"}
    assert o["error"]["code"] == "unsupported_op" and "runtime" in o["error"]["hint"]
    shown = harness("show", "--results", "r", "--json", cwd=tmp_path)
    assert json_objects(shown.stdout)[0]["error"] == o["error"]  # stored, not only printed


@pytest.fixture
def silent_server() -> Iterator[int]:
    """A TCP listener on loopback that accepts connections and never writes a byte: a port that
    is not an SSH server's, or an sshd that hangs."""
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(8)
    accepted: list[socket.socket] = []
    stop = threading.Event()

    def accept() -> None:
        server.settimeout(0.2)
        while not stop.is_set():
            try:
                accepted.append(server.accept()[0])
            except OSError:
                continue

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    try:
        yield server.getsockname()[1]
    finally:
        stop.set()
        thread.join(timeout=5)
        for conn in accepted:
            conn.close()
        server.close()


def test_a_silent_ssh_server_is_named_not_no_existing_session(silent_server: int, tmp_path: Path) -> None:
    from harness.config import SshOptions
    from harness.errors import TransportError
    from harness.lab.transports.ssh_link import SshLink

    (tmp_path / "known_hosts").write_text("")
    t0 = time.monotonic()
    with pytest.raises(TransportError) as err:
        SshLink("quiet", SshOptions(host="127.0.0.1", port=silent_server, user="nobody",
                                    known_hosts=str(tmp_path / "known_hosts"), connect_timeout_s=1))
    assert time.monotonic() - t0 < 8
    message = str(err.value)
    assert "No existing session" not in message
    assert (f"127.0.0.1:{silent_server} accepted the connection but did not answer the SSH handshake "
            "within connect_timeout_s = 1 s") in message
    assert "port = in [targets.quiet]" in message


def test_paramiko_prints_no_traceback_before_the_one_clear_line(silent_server: int, tmp_path: Path) -> None:
    (tmp_path / "known_hosts").write_text("")
    (tmp_path / "t.toml").write_text(
        f'[targets.quiet]\nkind = "ssh"\nhost = "127.0.0.1"\nport = {silent_server}\nuser = "nobody"\n'
        f'known_hosts = "{tmp_path / "known_hosts"}"\nconnect_timeout_s = 1\n')
    p = harness("run", "--targets", "t.toml", "--model", str(DIGITS), "--results", "r", cwd=tmp_path)
    assert p.returncode == 1
    assert "paramiko" not in p.stderr and "Traceback" not in p.stderr
    errors = [line for line in p.stderr.splitlines() if line.startswith("error")]
    assert len(errors) == 1 and "did not answer the SSH handshake" in errors[0]
    debug = harness("--debug", "run", "--targets", "t.toml", "--model", str(DIGITS), "--results", "r", cwd=tmp_path)
    assert "paramiko.transport" in debug.stderr  # --debug still shows what paramiko saw


def test_escape_sequences_in_a_model_name_are_shown_not_obeyed(tmp_path: Path) -> None:
    """A file named with ESC [2J (clear screen) and OSC 0 (set the window title): every line that
    names it (error line, table cell, notes, logs) shows the escapes as text."""
    good = tmp_path / "ev\x1b[2Jil.tflite"
    good.write_bytes(DIGITS.read_bytes())
    bad = tmp_path / "bad\x1b]0;pwned\x07.tflite"
    bad.write_bytes(b"not a model at all")
    p = harness("run", "--target", "local", "--model", str(good), "--model", str(bad), *QUICK,
                "--results", "r", cwd=project_dir(tmp_path))
    assert p.returncode == 1
    assert "\x1b" not in p.stdout + p.stderr and "\x07" not in p.stdout + p.stderr
    assert "ev\\x1b[2Jil.tflite" in p.stdout  # the table cell and the verdict
    errors = [line for line in p.stderr.splitlines() if line.startswith("error")]
    assert len(errors) == 1 and "bad\\x1b]0;pwned\\x07.tflite is not a TFLite model" in errors[0]
    shown = harness("show", "--results", "r", "--json", cwd=tmp_path)  # JSON keeps the real name
    assert {o["model"] for o in json_objects(shown.stdout)} == {good.name, bad.name}


def test_live_progress_escapes_names_and_markup() -> None:
    import io
    import threading

    from rich.console import Console

    from harness.plan import Job, Plan
    from harness.render.progress import LiveProgress

    out = io.StringIO()
    console = Console(file=out, force_terminal=True, width=120)
    job = Job(target="pi[/b]\x1b[2J", model=Path("[red]a\x1b]0;t\x07.tflite"), model_sha256="0" * 64,
              threads=1, plan=Plan())
    with LiveProgress(console, {job.target: 1}) as progress:
        progress.job_started(job)  # "[/b]" in a name was read as a closing markup tag: MarkupError
        progress.job_message(job, {"type": "hello"})
        threading.Event().wait(0.3)  # let the live display refresh at least once
    text = out.getvalue()
    assert "\x1b[2J" not in text and "\x1b]0;" not in text and "\x07" not in text
    assert "pi[/b]\\x1b[2J" in text and "[red]a\\x1b]0;t\\x07.tflite" in text


def test_visible_escapes_control_and_hiding_characters_only() -> None:
    from harness.render.text import visible

    assert visible("mobilenet_v1_025_96.mixed-top3.tflite") == "mobilenet_v1_025_96.mixed-top3.tflite"
    assert visible("modèle ünïcode 模型 😀.tflite") == "modèle ünïcode 模型 😀.tflite"
    assert visible("a\x1b[31mb\x07\n\t\x7f\x9b") == "a\\x1b[31mb\\x07\\x0a\\x09\\x7f\\x9b"
    assert visible("invoice\u202egnp.exe") == "invoice\\u202egnp.exe"  # a right-to-left override
