#!/usr/bin/env python3
"""Drives one headless Chromium page over the DevTools protocol, for tests of the dashboard.

Reads commands from standard input, one per line, and answers each with one JSON line
({"ok": true, "value": ...} or {"ok": false, "error": "..."}):
  header NAME: VALUE   sent with every request from now on (Network.setExtraHTTPHeaders)
  open URL             navigates and waits for the load event; value: the HTTP status
  eval EXPRESSION      evaluates JavaScript in the page (promises awaited); value: the result
  screenshot PATH      writes a PNG of the page
The page stays open between commands, so a test sees it update by itself.
"""
import asyncio
import base64
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
import urllib.request

import websockets


def launch():
    profile = tempfile.mkdtemp(prefix="chromium-cdp-")
    # --insecure: the test's own certificate authority is not one the browser knows.
    insecure = ["--ignore-certificate-errors"] if "--insecure" in sys.argv[1:] else []
    proc = subprocess.Popen(
        ["chromium", "--headless=new", "--no-sandbox", "--disable-gpu", "--no-first-run", "--no-default-browser-check",
         "--disable-extensions", "--remote-debugging-port=0", f"--user-data-dir={profile}", "--window-size=1400,1100",
         *insecure, "about:blank"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    active = os.path.join(profile, "DevToolsActivePort")
    deadline = time.time() + 30
    while time.time() < deadline and not os.path.exists(active):
        time.sleep(0.05)
    time.sleep(0.1)
    with open(active) as f:
        port = int(f.readline())
    targets = json.load(urllib.request.urlopen(f"http://127.0.0.1:{port}/json", timeout=10))
    page = next(t for t in targets if t.get("type") == "page")
    return proc, profile, page["webSocketDebuggerUrl"]


async def main():
    proc, profile, url = launch()
    try:
        async with websockets.connect(url, max_size=64 * 1024 * 1024) as ws:
            counter = 0
            events = []

            async def call(method, params=None):
                nonlocal counter
                counter += 1
                ident = counter
                await ws.send(json.dumps({"id": ident, "method": method, "params": params or {}}))
                while True:
                    message = json.loads(await asyncio.wait_for(ws.recv(), timeout=30))
                    if message.get("id") == ident:
                        if "error" in message:
                            raise RuntimeError(message["error"].get("message", str(message["error"])))
                        return message.get("result", {})
                    events.append(message)

            await call("Page.enable")
            await call("Network.enable")
            loop = asyncio.get_running_loop()
            while True:
                line = await loop.run_in_executor(None, sys.stdin.readline)
                if not line:
                    break
                command, _, argument = line.rstrip("\n").partition(" ")
                try:
                    if command == "header":
                        name, _, value = argument.partition(":")
                        await call("Network.setExtraHTTPHeaders", {"headers": {name.strip(): value.strip()}})
                        value = None
                    elif command == "open":
                        events.clear()
                        await call("Page.navigate", {"url": argument})
                        deadline = time.time() + 20
                        status = None
                        while time.time() < deadline:
                            for event in events:
                                if event.get("method") == "Network.responseReceived" and event["params"].get("type") == "Document":
                                    status = event["params"]["response"]["status"]
                                if event.get("method") == "Page.loadEventFired":
                                    deadline = 0
                            if deadline:
                                try:
                                    events.append(json.loads(await asyncio.wait_for(ws.recv(), timeout=1)))
                                except asyncio.TimeoutError:
                                    pass
                        value = status
                    elif command == "eval":
                        result = await call("Runtime.evaluate", {"expression": argument, "returnByValue": True, "awaitPromise": True})
                        if "exceptionDetails" in result:
                            raise RuntimeError(result["exceptionDetails"].get("text", "exception"))
                        value = result["result"].get("value")
                    elif command == "screenshot":
                        result = await call("Page.captureScreenshot", {"format": "png", "captureBeyondViewport": True})
                        with open(argument, "wb") as f:
                            f.write(base64.b64decode(result["data"]))
                        value = argument
                    else:
                        raise RuntimeError(f"unknown command {command}")
                    print(json.dumps({"ok": True, "value": value}), flush=True)
                except Exception as error:  # noqa: BLE001 — every failure is the test's to report
                    print(json.dumps({"ok": False, "error": str(error)}), flush=True)
    finally:
        proc.kill()
        proc.wait()
        shutil.rmtree(profile, ignore_errors=True)


if __name__ == "__main__":
    asyncio.run(main())
