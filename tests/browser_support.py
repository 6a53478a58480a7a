"""Headless Chromium driven over the DevTools protocol (CDP) with the `websockets` package
the server already depends on: no browser download, no driver. `Browser.start()` runs the
system's chromium (CHROMIUM, else /usr/bin/chromium or chromium on PATH) with an empty
profile and no network but loopback; `Page` blocks every request that is not for the
allowed origin (Fetch interception) and records what it blocked, console errors and
exceptions."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import itertools
import json
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any

REQUIRE_ENV = "REQUIRE_BROWSER"  # set by .ci/run: no chromium is a failure, not a skip

FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-extensions",
    "--disable-default-apps",
    "--mute-audio",
    # every name but loopback fails to resolve: nothing leaves the machine
    "--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE 127.0.0.1, EXCLUDE localhost",
    "--window-size=1400,900",
    "--remote-debugging-port=0",
)


# Installed in every document before its own scripts: what the CSP refused, in the page.
CSP_RECORDER = (
    "window.__cspViolations = [];"
    "document.addEventListener('securitypolicyviolation', e =>"
    " window.__cspViolations.push(e.violatedDirective + ' ' + e.blockedURI));"
)


def chromium_binary() -> str | None:
    for candidate in (os.environ.get("CHROMIUM"), "/usr/bin/chromium", "chromium"):
        if candidate and (found := shutil.which(candidate)):
            return found
    return None


class Page:
    """One tab, attached with a flat session."""

    def __init__(self, browser: Browser, session_id: str, allowed_origin: str) -> None:
        self.browser, self.session_id, self.allowed_origin = browser, session_id, allowed_origin
        self.blocked: list[str] = []
        self.errors: list[str] = []

    async def send(self, method: str, **params: Any) -> dict[str, Any]:
        return await self.browser.send(method, params, session_id=self.session_id)

    def on_event(self, method: str, params: dict[str, Any]) -> None:
        if method == "Fetch.requestPaused":
            url = params["request"]["url"]
            if url.startswith(self.allowed_origin + "/"):
                self.browser.fire("Fetch.continueRequest", {"requestId": params["requestId"]}, self)
            else:
                self.blocked.append(url)
                self.browser.fire(
                    "Fetch.failRequest",
                    {"requestId": params["requestId"], "errorReason": "BlockedByClient"},
                    self,
                )
        elif method == "Runtime.exceptionThrown":
            details = params["exceptionDetails"]
            self.errors.append(
                str((details.get("exception") or {}).get("description") or details.get("text"))
            )
        elif method == "Runtime.consoleAPICalled" and params.get("type") == "error":
            self.errors.append(
                " ".join(str(a.get("value", a.get("description"))) for a in params["args"])
            )
        elif method == "Log.entryAdded" and params["entry"].get("level") == "error":
            self.errors.append(params["entry"].get("text", ""))

    async def evaluate(self, expression: str) -> Any:
        answer = await self.send(
            "Runtime.evaluate", expression=expression, awaitPromise=True, returnByValue=True
        )
        if "exceptionDetails" in answer:
            raise AssertionError(f"{expression!r} threw: {answer['exceptionDetails']}")
        return answer["result"].get("value")

    async def wait_for(self, expression: str, *, within: float = 15.0, what: str = "") -> Any:
        """Evaluate until truthy (a condition in the page, polled: no timed assert)."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + within
        while True:
            value = await self.evaluate(expression)
            if value:
                return value
            if loop.time() > deadline:
                raise AssertionError(
                    f"waited {within:.0f} s for {what or expression}; page errors: {self.errors}"
                )
            await asyncio.sleep(0.1)

    async def csp_violations(self) -> list[str]:
        return list(await self.evaluate("window.__cspViolations") or [])

    async def navigate(self, url: str) -> None:
        await self.send("Page.navigate", url=url)

    async def screenshot(self, path: Path) -> Path:
        shot = await self.send("Page.captureScreenshot", format="png")
        await asyncio.to_thread(_write, path, base64.b64decode(shot["data"]))
        return path


def _write(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)


class Browser:
    def __init__(self, process: asyncio.subprocess.Process, profile: str, connection: Any) -> None:
        self.process, self.profile, self.connection = process, profile, connection
        self._ids = itertools.count(1)
        self._waiting: dict[int, asyncio.Future[dict[str, Any]]] = {}
        self._pages: dict[str, Page] = {}
        self._reader = asyncio.create_task(self._read())

    @classmethod
    async def start(cls, binary: str) -> Browser:
        from websockets.asyncio.client import connect

        profile = tempfile.mkdtemp(prefix="chromium-profile-")
        process = await asyncio.create_subprocess_exec(
            binary,
            *FLAGS,
            f"--user-data-dir={profile}",
            "about:blank",
            stdout=asyncio.subprocess.DEVNULL,
            stderr=asyncio.subprocess.DEVNULL,
        )
        port_file = Path(profile) / "DevToolsActivePort"
        for _ in range(300):  # chromium writes its port and browser path there when ready
            if port_file.exists() and len(port_file.read_text().split()) >= 2:
                break
            if process.returncode is not None:
                raise RuntimeError(f"chromium exited with {process.returncode}")
            await asyncio.sleep(0.05)
        port, path = port_file.read_text().split()[:2]
        connection = await connect(f"ws://127.0.0.1:{port}{path}", max_size=64 * 1024 * 1024)
        return cls(process, profile, connection)

    async def _read(self) -> None:
        async for raw in self.connection:
            message = json.loads(raw)
            if "id" in message:
                future = self._waiting.pop(message["id"], None)
                if future is not None and not future.done():
                    if "error" in message:
                        future.set_exception(RuntimeError(f"CDP error: {message['error']}"))
                    else:
                        future.set_result(message.get("result", {}))
            elif (page := self._pages.get(message.get("sessionId", ""))) is not None:
                page.on_event(message["method"], message.get("params", {}))

    async def send(
        self, method: str, params: dict[str, Any] | None = None, *, session_id: str | None = None
    ) -> dict[str, Any]:
        message_id = next(self._ids)
        future: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()
        self._waiting[message_id] = future
        message: dict[str, Any] = {"id": message_id, "method": method, "params": params or {}}
        if session_id:
            message["sessionId"] = session_id
        await self.connection.send(json.dumps(message))
        return await asyncio.wait_for(future, timeout=30)

    def fire(self, method: str, params: dict[str, Any], page: Page) -> None:
        """A command from an event handler, its answer not awaited."""
        task = asyncio.ensure_future(self.send(method, params, session_id=page.session_id))
        task.add_done_callback(lambda t: t.exception())

    async def new_page(self, allowed_origin: str) -> Page:
        target = await self.send("Target.createTarget", {"url": "about:blank"})
        attached = await self.send(
            "Target.attachToTarget", {"targetId": target["targetId"], "flatten": True}
        )
        page = Page(self, attached["sessionId"], allowed_origin.rstrip("/"))
        self._pages[page.session_id] = page
        for domain in ("Page", "Runtime", "Log"):
            await page.send(f"{domain}.enable")
        await page.send("Fetch.enable", patterns=[{"urlPattern": "*"}])
        await page.send("Page.addScriptToEvaluateOnNewDocument", source=CSP_RECORDER)
        return page

    async def close(self) -> None:
        with contextlib.suppress(Exception):
            await self.send("Browser.close")
        await self.connection.close()
        self._reader.cancel()
        try:
            await asyncio.wait_for(self.process.wait(), 10)
        except TimeoutError:
            self.process.kill()
            await self.process.wait()
        shutil.rmtree(self.profile, ignore_errors=True)
