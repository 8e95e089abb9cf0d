"""A real headless Chromium (Debian's package) driven over the Chrome DevTools Protocol, for the
report's tests: load a page, record every network request and console message it caused,
evaluate JavaScript in it, take a screenshot.

Chromium starts with ``--remote-debugging-port=0`` and a fresh profile directory; it writes the
port it chose and the browser's websocket path into ``DevToolsActivePort`` there. One websocket
(the ``websocket-client`` package of the test extra) to the browser, and one page target attached
in flat mode (every command carries the page's ``sessionId``). As root Chromium needs
``--no-sandbox``. The flags below keep it from calling home (component updates, sync, background
networking), so every request that shows is the page's own.
"""

from __future__ import annotations

import base64
import json
import shutil
import subprocess
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

FLAGS = ("--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync",
         "--disable-default-apps", "--disable-extensions", "--mute-audio", "--hide-scrollbars")


def binary() -> str | None:
    return shutil.which("chromium") or shutil.which("chromium-browser")


@dataclass
class PageLoad:
    """What loading a page did: the URLs it requested, its console messages and errors."""

    requests: list[str] = field(default_factory=list)
    console: list[tuple[str, str]] = field(default_factory=list)  # (level, text)
    exceptions: list[str] = field(default_factory=list)

    @property
    def errors(self) -> list[str]:
        return [text for level, text in self.console if level in ("error", "assert")] + self.exceptions


class Chromium:
    """``with Chromium() as c: load = c.open(path); c.evaluate("1 + 1"); c.screenshot(png)``."""

    def __init__(self, width: int = 1280, height: int = 900, timeout_s: float = 30.0) -> None:
        self.width, self.height, self.timeout_s = width, height, timeout_s
        self._id = 0
        self._events: list[dict[str, Any]] = []

    def __enter__(self) -> Chromium:
        import websocket

        exe = binary()
        if exe is None:
            raise RuntimeError("no chromium on PATH: apt-get install chromium")
        self._profile = tempfile.mkdtemp(prefix="harness-chromium-")
        self._proc = subprocess.Popen([exe, *FLAGS, f"--user-data-dir={self._profile}", "--remote-debugging-port=0",
                                       f"--window-size={self.width},{self.height}", "about:blank"],
                                      stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            port, path = self._active_port()
            self._ws = websocket.create_connection(f"ws://127.0.0.1:{port}{path}", timeout=self.timeout_s,
                                                   suppress_origin=True)
            target = self._call("Target.createTarget", url="about:blank")["targetId"]
            self._session = self._call("Target.attachToTarget", targetId=target, flatten=True)["sessionId"]
        except BaseException:
            self.__exit__(None, None, None)
            raise
        return self

    def __exit__(self, *exc: object) -> None:
        ws = getattr(self, "_ws", None)
        if ws is not None:
            ws.close()
        self._proc.terminate()
        try:
            self._proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self._proc.kill()
            self._proc.wait()
        shutil.rmtree(self._profile, ignore_errors=True)

    def _active_port(self) -> tuple[int, str]:
        file = Path(self._profile) / "DevToolsActivePort"
        deadline = time.monotonic() + self.timeout_s
        while time.monotonic() < deadline:
            if self._proc.poll() is not None:
                raise RuntimeError(f"chromium exited with status {self._proc.returncode} before it listened")
            lines = file.read_text().split("\n") if file.exists() else []
            if len(lines) >= 2 and lines[1]:
                return int(lines[0]), lines[1]
            time.sleep(0.05)
        raise TimeoutError("chromium wrote no DevToolsActivePort")

    def _call(self, method: str, session: bool = False, **params: Any) -> dict[str, Any]:
        """Send one command and wait for its answer; events that come meanwhile are kept."""
        self._id += 1
        msg: dict[str, Any] = {"id": self._id, "method": method, "params": params}
        if session:
            msg["sessionId"] = self._session
        self._ws.send(json.dumps(msg))
        deadline = time.monotonic() + self.timeout_s
        while time.monotonic() < deadline:
            reply = json.loads(self._ws.recv())
            if reply.get("id") == self._id:
                if "error" in reply:
                    raise RuntimeError(f"{method}: {reply['error']}")
                return reply.get("result", {})
            self._events.append(reply)
        raise TimeoutError(f"{method}: no answer in {self.timeout_s} s")

    def page(self, method: str, **params: Any) -> dict[str, Any]:
        return self._call(method, session=True, **params)

    def _wait_event(self, method: str) -> dict[str, Any]:
        deadline = time.monotonic() + self.timeout_s
        while time.monotonic() < deadline:
            for ev in self._events:
                if ev.get("method") == method:
                    return ev
            self._events.append(json.loads(self._ws.recv()))
        raise TimeoutError(f"no {method} in {self.timeout_s} s")

    def open(self, path: Path) -> PageLoad:
        """Load ``path`` (a local file) and return what the load did, once it fired its load event
        and the page has been idle a moment (late requests and console messages included)."""
        for domain in ("Network", "Runtime", "Log", "Page"):
            self.page(f"{domain}.enable")
        self.page("Emulation.setDeviceMetricsOverride", width=self.width, height=self.height,
                  deviceScaleFactor=1, mobile=False)
        self._events.clear()
        self.page("Page.navigate", url=path.resolve().as_uri())
        self._wait_event("Page.loadEventFired")
        self.evaluate("new Promise(r => setTimeout(r, 300))")  # anything the page does after load
        return self._load()

    def _load(self) -> PageLoad:
        load = PageLoad()
        for ev in self._events:
            p = ev.get("params", {})
            method = ev.get("method")
            if method == "Network.requestWillBeSent":
                load.requests.append(p["request"]["url"])
            elif method == "Runtime.consoleAPICalled":
                load.console.append((p.get("type", ""), " ".join(str(a.get("value", a.get("description", "")))
                                                                 for a in p.get("args", []))))
            elif method == "Log.entryAdded":
                load.console.append((p["entry"].get("level", ""), p["entry"].get("text", "")))
            elif method == "Runtime.exceptionThrown":
                load.exceptions.append(json.dumps(p.get("exceptionDetails", {}))[:500])
        return load

    def evaluate(self, expression: str) -> Any:
        """The value of a JavaScript expression in the page (a promise is awaited)."""
        result = self.page("Runtime.evaluate", expression=expression, returnByValue=True, awaitPromise=True)
        if "exceptionDetails" in result:
            raise RuntimeError(f"page script failed: {result['exceptionDetails']}")
        return result["result"].get("value")

    def screenshot(self, out: Path, full_page: bool = True) -> Path:
        """A PNG of the page (the whole page's height with ``full_page``)."""
        params: dict[str, Any] = {"format": "png"}
        if full_page:
            size = self.page("Page.getLayoutMetrics")["cssContentSize"]
            params.update(captureBeyondViewport=True,
                          clip={"x": 0, "y": 0, "width": size["width"], "height": size["height"], "scale": 1})
        out.write_bytes(base64.b64decode(self.page("Page.captureScreenshot", **params)["data"]))
        return out
