"""The rendered report in headless Chromium (Debian's package): loads from a file URL with no network request
and no console error, every image and plot has a non-zero size, and a screenshot is taken.

Talks to the browser over the DevTools protocol on a pipe (--remote-debugging-pipe: fd 3 in, fd 4 out,
NUL-terminated JSON), so no extra package is needed.
"""

from __future__ import annotations

import base64
import json
import os
import subprocess
import time
from pathlib import Path

import pytest

CHROMIUM = "/usr/bin/chromium"
pytestmark = pytest.mark.skipif(not Path(CHROMIUM).exists(),
                                reason="install Debian's chromium (apt-get install chromium) to run the browser check")


class Pipe:
    def __init__(self, user_dir: Path):
        r_in, self.w = os.pipe()   # we write commands -> chromium reads fd 3
        self.r, w_out = os.pipe()  # chromium writes fd 4 -> we read
        # The shell moves our pipe ends to fds 3 and 4 after fork/exec, where nothing of Popen's can collide.
        self.proc = subprocess.Popen(
            ["/bin/bash", "-c", f'exec "$0" "$@" 3<&{r_in} 4>&{w_out} {r_in}<&- {w_out}>&-', CHROMIUM,
             "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
             "--disable-component-update", "--disable-sync", "--no-first-run", "--disable-extensions",
             "--disable-default-apps", "--mute-audio", f"--user-data-dir={user_dir}", "--remote-debugging-pipe",
             "--window-size=1280,1600"],
            pass_fds=(r_in, w_out), stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        os.close(r_in)
        os.close(w_out)
        self.buf, self.next_id, self.events = b"", 0, []

    def send(self, method: str, params: dict | None = None, session: str | None = None, timeout: float = 30):
        self.next_id += 1
        msg = {"id": self.next_id, "method": method, "params": params or {}}
        if session:
            msg["sessionId"] = session
        os.write(self.w, json.dumps(msg).encode() + b"\0")
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            m = self._read()
            if m.get("id") == self.next_id:
                if "error" in m:
                    raise RuntimeError(f"{method}: {m['error']}")
                return m["result"]
            self.events.append(m)
        raise TimeoutError(method)

    def wait_event(self, method: str, timeout: float = 30) -> dict:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if any(e.get("method") == method for e in self.events):
                return next(e for e in self.events if e.get("method") == method)
            self.events.append(self._read())
        raise TimeoutError(method)

    def _read(self) -> dict:
        while b"\0" not in self.buf:
            chunk = os.read(self.r, 1 << 20)
            if not chunk:
                raise RuntimeError("chromium closed the DevTools pipe")
            self.buf += chunk
        msg, self.buf = self.buf.split(b"\0", 1)
        return json.loads(msg)

    def close(self):
        try:
            self.send("Browser.close", timeout=5)
        except Exception:
            pass
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
        os.close(self.w)
        os.close(self.r)


SIZES_JS = """JSON.stringify(Array.from(document.querySelectorAll('img, svg')).map(e => {
  const r = e.getBoundingClientRect();
  return {tag: e.tagName, w: r.width, h: r.height, complete: e.tagName !== 'IMG' || (e.complete && e.naturalWidth > 0)};
}))"""


def inspect_page(html_path: Path, tmp: Path) -> dict:
    pipe = Pipe(tmp / "chromium-profile")
    try:
        target = pipe.send("Target.createTarget", {"url": "about:blank"})["targetId"]
        session = pipe.send("Target.attachToTarget", {"targetId": target, "flatten": True})["sessionId"]
        for domain in ("Page", "Network", "Runtime", "Log"):
            pipe.send(f"{domain}.enable", session=session)
        pipe.events.clear()
        url = html_path.resolve().as_uri()
        pipe.send("Page.navigate", {"url": url}, session=session)
        pipe.wait_event("Page.loadEventFired")
        sizes = json.loads(pipe.send("Runtime.evaluate", {"expression": SIZES_JS, "returnByValue": True},
                                     session=session)["result"]["value"])
        shot = pipe.send("Page.captureScreenshot", {"format": "png", "captureBeyondViewport": True},
                         session=session)["data"]
        time.sleep(0.2)
        pipe.send("Runtime.evaluate", {"expression": "1"}, session=session)  # drain late events
    finally:
        pipe.close()
    ev = pipe.events
    requests = [e["params"]["request"]["url"] for e in ev if e.get("method") == "Network.requestWillBeSent"]
    errors = [e["params"] for e in ev if e.get("method") == "Runtime.exceptionThrown"
              or (e.get("method") == "Runtime.consoleAPICalled" and e["params"].get("type") == "error")
              or (e.get("method") == "Log.entryAdded" and e["params"]["entry"].get("level") == "error")]
    png = base64.b64decode(shot)
    (tmp / "screenshot.png").write_bytes(png)
    return {"url": url, "requests": requests, "errors": errors, "sizes": sizes, "png": png}


def _check(result: dict, min_imgs: int, min_svgs: int) -> None:
    external = [u for u in result["requests"] if u != result["url"] and not u.startswith("data:")]
    assert external == [], f"the report made network requests: {external}"
    assert result["errors"] == [], f"console errors: {result['errors']}"
    imgs = [s for s in result["sizes"] if s["tag"] == "IMG"]
    svgs = [s for s in result["sizes"] if s["tag"].lower() == "svg"]
    assert len(imgs) >= min_imgs and len(svgs) >= min_svgs, result["sizes"]
    assert all(s["w"] > 0 and s["h"] > 0 and s["complete"] for s in result["sizes"]), result["sizes"]
    png = result["png"]
    assert png[:8] == b"\x89PNG\r\n\x1a\n" and len(png) > 10_000
    import io

    from PIL import Image
    im = Image.open(io.BytesIO(png))
    assert im.width >= 1000 and im.height > 1600  # captureBeyondViewport: the whole page, not a blank viewport
    import numpy as np

    assert len(np.unique(np.asarray(im.convert("L").resize((64, 64))))) > 8  # not a single-colour page


def test_complete_report_in_chromium(complete_report: Path, tmp_path: Path):
    result = inspect_page(complete_report, tmp_path)
    # 3 sample grids; plots: spectrum, convergence (ours + paper)
    _check(result, min_imgs=3, min_svgs=3)


def test_csp_blocks_an_injected_external_image(complete_report: Path, tmp_path: Path):
    """The check can fail: a page that tries to fetch something is caught (blocked by the CSP, logged as error)."""
    bad = tmp_path / "bad.html"
    bad.write_text(complete_report.read_text().replace("</body>", '<img src="http://example.invalid/x.png"></body>'))
    result = inspect_page(bad, tmp_path)
    assert result["errors"] or any("example.invalid" in u for u in result["requests"])
