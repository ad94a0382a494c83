#!/usr/bin/python3
"""Drives a real headless Chromium (Debian's chromium + chromium-driver, python3-selenium) for the
web page tests. One JSON command per line on standard input, one JSON answer per line on standard
output: {"ok": true, "value": ...} or {"ok": false, "error": "..."}. Waiting commands take
"timeout" (seconds, default 10).

  {"op": "open", "url": U}                       load a page
  {"op": "wait", "css": S, "text": T, "attr": A, "value": V, "hidden": B}
                                                 until an element matches (and contains T, and its
                                                 attribute A is V; or until it is hidden or absent)
  {"op": "click", "css": S}                      a real click
  {"op": "type", "css": S, "text": T}            clear the field, then type
  {"op": "check", "css": S}                      tick a checkbox
  {"op": "select", "css": S, "value": V}         choose an option
  {"op": "range", "css": S, "value": N}          move a slider: input and change events as a drag
  {"op": "text", "css": S}                       the element's text
  {"op": "eval", "js": J}                        the value of `return J` in the page
  {"op": "source"}                               the page as the browser has it now
  {"op": "screenshot", "path": P, "width": W, "height": H}
  {"op": "console"}                              the console's messages so far (CSP reports land there)
  {"op": "serve", "html": H}                     serve H on another port of 127.0.0.1 (another
                                                 origin); the value is its URL
  {"op": "quit"}
"""
import http.server
import json
import sys
import threading

from selenium import webdriver
from selenium.common.exceptions import NoSuchElementException, StaleElementReferenceException, TimeoutException
from selenium.webdriver.chrome.options import Options
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.support.ui import Select, WebDriverWait

options = Options()
for argument in ["--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu",
                 "--window-size=1280,1000", "--ignore-certificate-errors", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update"]:
    options.add_argument(argument)
options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
driver = webdriver.Chrome(service=Service("/usr/bin/chromedriver"), options=options)
console = []
servers = []


def find(css):
    return driver.find_element(By.CSS_SELECTOR, css)


def wait(command):
    css = command["css"]
    timeout = command.get("timeout", 10)

    def matches(_):
        try:
            element = find(css)
            if command.get("hidden"):
                return not element.is_displayed()
            if not element.is_displayed() and not command.get("present"):
                return False
            if "text" in command and command["text"] not in element.text:
                return False
            if "attr" in command and element.get_attribute(command["attr"]) != str(command["value"]):
                return False
            return element.text or True
        except NoSuchElementException:
            return bool(command.get("hidden"))
        except StaleElementReferenceException:
            return False

    try:
        return WebDriverWait(driver, timeout, poll_frequency=0.1).until(matches)
    except TimeoutException:
        try:
            element = find(css)
            seen = f"{css} shows {element.text[:300]!r}"
            if "attr" in command:
                seen += f", {command['attr']}={element.get_attribute(command['attr'])!r}"
        except NoSuchElementException:
            seen = f"no {css}"
        raise RuntimeError(f"waited {timeout} s for {json.dumps(command)}: {seen}")


def serve(html):
    body = html.encode()

    class Page(http.server.BaseHTTPRequestHandler):
        def do_GET(self):
            self.send_response(200)
            self.send_header("Content-Type", "text/html")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args):
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Page)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    servers.append(server)
    return f"http://127.0.0.1:{server.server_address[1]}/"


def run(command):
    op = command["op"]
    if op == "open":
        driver.get(command["url"])
    elif op == "wait":
        return wait(command)
    elif op == "click":
        find(command["css"]).click()
    elif op == "type":
        element = find(command["css"])
        element.clear()
        element.send_keys(command["text"])
    elif op == "check":
        element = find(command["css"])
        if not element.is_selected():
            element.click()
    elif op == "select":
        Select(find(command["css"])).select_by_value(str(command["value"]))
    elif op == "range":
        driver.execute_script(
            "const e = arguments[0]; e.focus(); e.value = arguments[1];"
            "e.dispatchEvent(new Event('input', {bubbles: true}));"
            "e.dispatchEvent(new Event('change', {bubbles: true})); e.blur();",
            find(command["css"]), str(command["value"]))
    elif op == "text":
        return find(command["css"]).text
    elif op == "eval":
        return driver.execute_script("return " + command["js"])
    elif op == "source":
        return driver.execute_script("return document.documentElement.outerHTML")
    elif op == "screenshot":
        if "width" in command:
            driver.set_window_size(command["width"], command["height"])
        driver.save_screenshot(command["path"])
        if "width" in command:
            driver.set_window_size(1280, 1000)
    elif op == "console":
        console.extend(driver.get_log("browser"))
        return console
    elif op == "serve":
        return serve(command["html"])
    else:
        raise RuntimeError(f"unknown op {op}")
    return None


print(json.dumps({"ok": True, "value": "ready"}), flush=True)
for line in sys.stdin:
    if not line.strip():
        continue
    command = json.loads(line)
    if command["op"] == "quit":
        break
    try:
        answer = {"ok": True, "value": run(command)}
    except Exception as error:  # every failure goes back to the test, which decides
        answer = {"ok": False, "error": f"{type(error).__name__}: {error}"}
    print(json.dumps(answer), flush=True)
for server in servers:
    server.shutdown()
driver.quit()
