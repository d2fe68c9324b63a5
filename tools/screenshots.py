"""Take the README's screenshots of a running Odoo with headless Chromium.

    python tools/screenshots.py --url http://127.0.0.1:8069 --db mydb [--login admin --password admin]

Start the server with workers (``--workers=2 --max-cron-threads=1``) and a log
file (``--logfile``) so that the page shows a sibling worker's stack dump.
Chromium (Debian package ``chromium``) is driven through the DevTools protocol
(``websocket-client``): log in, open Diagnostics, click, capture. Writes
diagnostics.png, diagnostics_stacks.png, advisor.png and settings.png into
static/description/ (or ``--out``). Look at them before committing them.
"""

import argparse
import base64
import json
import pathlib
import shutil
import socket
import subprocess
import tempfile
import time

import requests
import websocket

ROOT = pathlib.Path(__file__).resolve().parents[1]
DIAGNOSTICS = "/odoo/action-memory_hygiene.memory_diagnostics_action_server"
SETTINGS_BLOCK = """(() => {
    const box = document.querySelector('#memory_hygiene_sampling').closest('.o_settings_container');
    const head = box.previousElementSibling;
    head.scrollIntoView();
    const a = head.getBoundingClientRect(), b = box.getBoundingClientRect();
    return [b.left - 8, a.top - 8, b.width + 16, b.bottom - a.top + 16];
})()"""


class Browser:
    def __init__(self, width=1400, height=900):
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            port = sock.getsockname()[1]
        self.profile = tempfile.mkdtemp(prefix="memory_hygiene_chromium_")
        self.process = subprocess.Popen(  # noqa: S603 - a fixed command line
            [
                shutil.which("chromium") or "chromium",
                "--headless=new",
                "--no-sandbox",
                "--disable-gpu",
                "--hide-scrollbars",
                f"--remote-debugging-port={port}",
                f"--user-data-dir={self.profile}",
                "about:blank",
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        tabs = self._wait(lambda: requests.get(f"http://127.0.0.1:{port}/json", timeout=1).json())
        page = next(tab for tab in tabs if tab["type"] == "page")
        self.ws = websocket.create_connection(page["webSocketDebuggerUrl"], timeout=60)
        self.next_id = 0
        self.call("Page.enable")
        self.size(width, height)

    @staticmethod
    def _wait(read, timeout=20):
        deadline = time.monotonic() + timeout
        while True:
            try:
                return read()
            except requests.RequestException:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.2)

    def call(self, method, **params):
        self.next_id += 1
        self.ws.send(json.dumps({"id": self.next_id, "method": method, "params": params}))
        while True:
            message = json.loads(self.ws.recv())
            if message.get("id") == self.next_id:
                if "error" in message:
                    raise RuntimeError(message["error"])
                return message.get("result")

    def js(self, expression):
        result = self.call("Runtime.evaluate", expression=expression, awaitPromise=True, returnByValue=True)
        return result["result"].get("value")

    def until(self, expression, timeout=30):
        deadline = time.monotonic() + timeout
        while not self.js(f"!!({expression})"):
            if time.monotonic() > deadline:
                raise TimeoutError(expression)
            time.sleep(0.3)
        time.sleep(1)  # let the page settle (fonts, progress bars)

    def size(self, width, height):
        self.call(
            "Emulation.setDeviceMetricsOverride",
            width=width,
            height=height,
            deviceScaleFactor=1,
            mobile=False,
        )

    def goto(self, url):
        self.call("Page.navigate", url=url)

    def click(self, selector):
        self.js(f"document.querySelector({json.dumps(selector)}).click()")

    def capture(self, path, clip=None):
        params = {"format": "png"}
        if clip:
            params["clip"] = {"x": clip[0], "y": clip[1], "width": clip[2], "height": clip[3], "scale": 1}
        path.write_bytes(base64.b64decode(self.call("Page.captureScreenshot", **params)["data"]))
        print("wrote", path)

    def close(self):
        self.process.kill()
        self.process.wait()
        shutil.rmtree(self.profile, ignore_errors=True)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--url", required=True)
    parser.add_argument("--db", required=True)
    parser.add_argument("--login", default="admin")
    parser.add_argument("--password", default="admin")
    parser.add_argument("--out", type=pathlib.Path, default=ROOT / "static" / "description")
    args = parser.parse_args()
    browser = Browser()
    try:
        browser.goto(f"{args.url}/web/login?db={args.db}")
        browser.until("document.querySelector('input[name=login]') !== null")
        browser.js(
            f"document.querySelector('input[name=login]').value = {json.dumps(args.login)};"
            f"document.querySelector('input[name=password]').value = {json.dumps(args.password)};"
            "document.querySelector('form').submit();"
        )
        browser.until("location.pathname.startsWith('/odoo')")

        browser.goto(args.url + DIAGNOSTICS)
        browser.until("document.querySelector('.o_memory_diagnostics div[name=process_ids] .o_data_row')")
        browser.capture(args.out / "diagnostics.png")

        # Stacks of the cron worker: a sibling of the HTTP worker that answers.
        browser.js(
            "[...document.querySelectorAll('.o_data_row')].find(r => r.textContent.includes('Cron'))"
            ".querySelector('button[name=action_signal_stacks]').click()"
        )
        browser.until("document.querySelector('.modal-footer .btn-primary')")
        browser.click(".modal-footer .btn-primary")
        browser.until(
            "document.querySelector('div[name=output_title]')?.textContent.includes('Thread stacks')"
        )
        browser.capture(args.out / "diagnostics_stacks.png")

        browser.js("[...document.querySelectorAll('.o_notebook .nav-link')][2].click()")
        browser.until("document.querySelector('div[name=finding_ids] .o_data_row')")
        browser.js("document.querySelector('.o_notebook').scrollIntoView()")
        browser.capture(args.out / "advisor.png")

        browser.size(1400, 1400)
        browser.goto(args.url + "/odoo/settings")
        browser.until("document.querySelector('#memory_hygiene_sampling')")
        browser.js(SETTINGS_BLOCK)
        time.sleep(1)
        browser.capture(args.out / "settings.png", clip=browser.js(SETTINGS_BLOCK))
    finally:
        browser.close()


if __name__ == "__main__":
    main()
