"""The browser walk of the student notebooks (issue #21): Run All in JupyterLab in Chromium, as a student would.

A maintainer tool, not a test (pytest collects only test_*.py). Run it with a Python that has Playwright, from the
project folder; it first writes the variant notebooks with the course's Python (walk_variants.py):

    /tmp/pw-venv/bin/python tests/browser/walk_browser.py [--lessons 01 02] [--kinds student wrong right skip stale]

Everything goes to /tmp/walk (override with --walk-dir): notebooks/, outputs/, data/, shots/*.png, results.json
and results.md. The Jupyter server runs with COURSE_PROFILE=smoke, under `nice -n 5`.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import secrets
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

from playwright.sync_api import Page, sync_playwright

PROJECT = Path(__file__).resolve().parents[2]
TRACEBACK = re.compile(r"Traceback|File \"")
CELLS_SCRIPT = """() => Array.from(document.querySelectorAll('.jp-NotebookPanel .jp-Notebook .jp-Cell')).map(cell => ({
    code: cell.classList.contains('jp-CodeCell'),
    prompt: (cell.querySelector('.jp-InputPrompt') || {innerText: ''}).innerText,
    outputs: Array.from(cell.querySelectorAll('.jp-OutputArea-output')).map(output => ({
        mime: output.getAttribute('data-mime-type') || '', text: output.innerText})),
}))"""


def free_port() -> int:
    """A TCP port nobody listens on now."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def start_server(walk: Path, port: int, token: str) -> subprocess.Popen:
    """JupyterLab on `walk`, smoke profile, windowing off so that every cell is in the page."""
    settings = walk / "lab-settings"
    for name, value in {"@jupyterlab/notebook-extension/tracker": {"windowingMode": "none"},
                        "@jupyterlab/apputils-extension/notification": {"fetchNews": "false",
                                                                        "checkForUpdates": False}}.items():
        path = settings / f"{name}.jupyterlab-settings"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(value))
    environment = {**os.environ, "COURSE_PROFILE": "smoke", "COURSE_OUTPUT_DIR": str(walk / "outputs"),
                   "COURSE_DATA_DIR": str(walk / "data"), "JUPYTERLAB_SETTINGS_DIR": str(settings),
                   "JUPYTERLAB_WORKSPACES_DIR": str(walk / "workspaces")}
    environment.pop("MPLBACKEND", None)
    command = ["nice", "-n", "5", str(PROJECT / ".venv/bin/jupyter"), "lab", "--no-browser", f"--port={port}",
               f"--IdentityProvider.token={token}", f"--notebook-dir={walk}", "--allow-root"]
    server = subprocess.Popen(command, env=environment, stdout=open(walk / "server.log", "w"),
                              stderr=subprocess.STDOUT)
    for _ in range(120):
        try:
            urllib.request.urlopen(f"http://127.0.0.1:{port}/api/status?token={token}", timeout=2)
            return server
        except OSError:
            time.sleep(1)
    server.terminate()
    raise SystemExit(f"walk: JupyterLab did not start; see {walk / 'server.log'}")


def shut_down_kernels(base: str, token: str) -> None:
    """Stop every kernel of the walk's server, so runs do not pile up in memory."""
    with urllib.request.urlopen(f"{base}/api/kernels?token={token}") as response:
        kernels = json.load(response)
    for kernel in kernels:
        request = urllib.request.Request(f"{base}/api/kernels/{kernel['id']}?token={token}", method="DELETE")
        urllib.request.urlopen(request).close()


def prompt_number(prompt: str) -> int | None:
    """The execution count in a prompt such as "[12]:", or None ("[ ]:", "[*]:")."""
    match = re.search(r"\[(\d+)\]", prompt)
    return int(match.group(1)) if match else None


def wait_until_done(page: Page, timeout: float = 900) -> None:
    """Wait until no cell is queued or running ("[*]") for three polls in a row."""
    started, quiet = time.monotonic(), 0
    while time.monotonic() - started < timeout:
        prompts = page.eval_on_selector_all(".jp-NotebookPanel .jp-InputPrompt", "els => els.map(e => e.innerText)")
        busy = any("*" in prompt for prompt in prompts)
        quiet = 0 if busy or not any(prompt_number(p) for p in prompts) else quiet + 1
        if quiet >= 3:
            return
        time.sleep(1.5)
    raise TimeoutError("Run All did not finish in time")


def open_notebook(page: Page, base: str, token: str, path: str) -> None:
    """Open a notebook in a fresh JupyterLab page and wait for its kernel to be idle."""
    page.goto(f"{base}/lab/tree/{path}?reset&token={token}")
    page.wait_for_selector(".jp-NotebookPanel .jp-Cell", timeout=120_000)
    idle = page.locator(".jp-Notebook-ExecutionIndicator[data-status='idle']")
    quiet = 0
    for _ in range(180):
        quiet = quiet + 1 if idle.count() and not accept_kernel_dialog(page) else 0
        if quiet >= 4:
            return
        time.sleep(1)
    raise TimeoutError("the kernel did not become idle")


def accept_kernel_dialog(page: Page) -> bool:
    """Answer JupyterLab's "Select Kernel" dialog, when it shows, with the notebook's own kernel."""
    select = page.locator(".jp-Dialog button", has_text=re.compile("^Select$"))
    if not select.count():
        return False
    select.first.click()
    time.sleep(1)
    return True


def menu(page: Page, top: str, item: str) -> None:
    """Choose `top` > `item` in JupyterLab's menu bar."""
    accept_kernel_dialog(page)
    page.locator(".lm-MenuBar-itemLabel", has_text=re.compile(f"^{top}$")).click()
    page.locator(".lm-Menu-itemLabel", has_text=re.compile(f"^{re.escape(item)}$")).first.click()


def run_all(page: Page) -> None:
    """Run > Run All Cells, again if no cell started within 30 s (a click lost while the page was busy)."""
    for _ in range(3):
        menu(page, "Run", "Run All Cells")
        for _ in range(20):
            prompts = page.eval_on_selector_all(".jp-NotebookPanel .jp-InputPrompt",
                                                "els => els.map(e => e.innerText)")
            if any("*" in prompt or prompt_number(prompt) for prompt in prompts):
                wait_until_done(page)
                return
            time.sleep(1.5)
    raise TimeoutError("Run All did not start")


def select_cell(page: Page, index: int) -> None:
    """Select one cell in command mode, as a click on its prompt does."""
    cell = page.locator(".jp-NotebookPanel .jp-Notebook .jp-Cell").nth(index)
    cell.scroll_into_view_if_needed()
    cell.locator(".jp-InputPrompt").click()
    page.keyboard.press("Escape")


def run_cells(page: Page, indices: list[int]) -> None:
    """Run the given cells one by one in the open kernel (Ctrl+Enter on each)."""
    for index in indices:
        select_cell(page, index)
        page.keyboard.press("Control+Enter")
        time.sleep(2)
        wait_until_done(page)


def analyse(cells: list[dict]) -> dict:
    """Where Run All stopped, the text of the red box there, and every traceback line on the page."""
    # A cell that Run All had queued behind a failed cell and the lesson skipped (course_utils.stop_at_error) has a
    # prompt number but ran nothing: it counts as not run.
    numbers = [(None if skipped(cell) else prompt_number(cell["prompt"]), index)
               for index, cell in enumerate(cells) if cell["code"]]
    executed = [(number, index) for number, index in numbers if number is not None]
    last = max(executed)[1] if executed else None
    stopped = last is not None and any(number is None for number, index in numbers if index > last)
    red = ""
    if last is not None:
        red = "\n".join(o["text"] for o in cells[last]["outputs"] if "stderr" in o["mime"] or "error" in o["mime"])
    tracebacks = [index for index, cell in enumerate(cells)
                  if any(TRACEBACK.search(o["text"]) for o in cell["outputs"])]
    return {"last_cell": last, "stopped": stopped, "red_box": red.strip(), "traceback_cells": tracebacks}


def skipped(cell: dict) -> bool:
    """Whether the cell's only output is the line of a cell skipped after a failure above it."""
    return bool(cell["outputs"]) and all(o["text"].startswith("⏭️ Not run") for o in cell["outputs"])


def cell_text(cells: list[dict], index: int) -> str:
    """All output text of one cell."""
    return "\n".join(o["text"] for o in cells[index]["outputs"]) if 0 <= index < len(cells) else ""


def first_line_with(text: str, marks: tuple[str, ...]) -> str:
    """The first line holding one of `marks`, cut to 100 characters."""
    for line in text.splitlines():
        if any(mark in line for mark in marks):
            return line.strip()[:100]
    return text.strip().splitlines()[0][:100] if text.strip() else ""


def judge(entry: dict, cells: list[dict], found: dict) -> tuple[bool, str]:
    """Whether the run shows what the variant should show, and the line that decides it."""
    exercise_cell = entry["exercise_cell"]
    checked = cell_text(cells, exercise_cell) + "\n" + cell_text(cells, exercise_cell + 1)
    red, kind = found["red_box"], entry["kind"]
    if found["traceback_cells"]:
        return False, "traceback in cell(s) " + ", ".join(map(str, found["traceback_cells"])) + ": " + \
            first_line_with(red or checked, ("Error", "Traceback", "❌"))
    later = sorted(int(number) for number in entry["cells"] if int(number) > entry["exercise"])
    next_stub = f"✏️ Exercise {later[0]}" if later else "(none)"
    if kind == "student":
        ok = found["stopped"] and f"✏️ Exercise {entry['exercise']}" in red
        return ok, first_line_with(red, ("✏️",))
    if kind == "wrong":
        ok = found["stopped"] and "❌" in red and found["last_cell"] in (exercise_cell, exercise_cell + 1)
        return ok, first_line_with(red, ("❌", "✏️", "Error"))
    went_on = (not found["stopped"]) or next_stub in red
    if kind == "right" or kind == "stale":
        ok = "✅" in checked and went_on and "❌" not in checked
        return ok, first_line_with(checked, ("❌", "✅")) + ("" if went_on else f" | stopped: {red[:80]}")
    ok = went_on and "❌" not in checked
    line = first_line_with(checked, ("✅", "❌", "🔑", "skip")) or "(no output)"
    return ok, line + ("" if went_on else f" | stopped: {red[:80]}")


def screenshot(page: Page, index: int, path: Path) -> None:
    """A picture of one cell with its outputs."""
    cell = page.locator(".jp-NotebookPanel .jp-Notebook .jp-Cell").nth(index)
    cell.scroll_into_view_if_needed()
    cell.screenshot(path=str(path))


def walk_one(page: Page, base: str, token: str, entry: dict, shots: Path) -> dict:
    """Open one variant, Run All, judge it and take its screenshots."""
    open_notebook(page, base, token, entry["path"])
    run_all(page)
    if entry["kind"] == "stale":  # the right answer, in the next cell, run in the same kernel, then all below
        cell = page.locator(".jp-NotebookPanel .jp-Notebook .jp-Cell").nth(entry["exercise_cell"] + 1)
        cell.locator(".jp-InputPrompt").click()
        menu(page, "Run", "Run Selected Cell and All Below")
        time.sleep(2)
        wait_until_done(page)
        entry = {**entry, "exercise_cell": entry["exercise_cell"] + 1}
    cells = page.evaluate(CELLS_SCRIPT)
    found = analyse(cells)
    ok, line = judge(entry, cells, found)
    name = f"L{entry['lesson']}_{entry['variant']}"
    pictures = [shots / f"{name}.png"]
    screenshot(page, entry["exercise_cell"], pictures[0])
    if found["stopped"] and found["last_cell"] != entry["exercise_cell"]:
        pictures.append(shots / f"{name}_stop.png")
        screenshot(page, found["last_cell"], pictures[-1])
    return {"lesson": entry["lesson"], "variant": entry["variant"], "kind": entry["kind"], "ok": ok, "line": line,
            "stopped_at_cell": found["last_cell"] if found["stopped"] else None,
            "traceback_cells": found["traceback_cells"], "screenshots": [str(p) for p in pictures]}


def group_result(entry: dict, group: dict, cells: list[dict], page: Page, shots: Path, ok: bool, line: str,
                 found: dict) -> dict:
    """One row of the walk for one answer of a combined notebook, with its screenshots."""
    name = f"L{entry['lesson']}_ex{group['exercise']}_{group['kind']}"
    pictures = []
    for number, index in enumerate(group["cells"]):
        pictures.append(shots / (f"{name}.png" if number == 0 else f"{name}_check.png"))
        screenshot(page, index, pictures[-1])
    return {"lesson": entry["lesson"], "variant": f"ex{group['exercise']}_{group['kind']}", "kind": group["kind"],
            "ok": ok, "line": line, "stopped_at_cell": found["last_cell"] if found["stopped"] else None,
            "screenshots": [str(p) for p in pictures]}


def group_text(cells: list[dict], group: dict) -> str:
    """The output text of a group's cells."""
    return "\n".join(cell_text(cells, index) for index in group["cells"])


def walk_combined(page: Page, base: str, token: str, entry: dict, shots: Path) -> list[dict]:
    """One kernel per lesson, as a student tries: Run All stops at the wrong answer of Exercise 1; run the right
    answer (the cell below it); then the skip line's cell and all below, which runs on to the next wrong answer."""
    open_notebook(page, base, token, entry["path"])
    run_all(page)
    results, groups = [], entry["groups"]
    for position in range(0, len(groups), 3):
        wrong, right, skip = groups[position:position + 3]
        following = groups[position + 3] if position + 3 < len(groups) else None
        cells = page.evaluate(CELLS_SCRIPT)
        found = analyse(cells)
        text = group_text(cells, wrong)
        ok = (found["stopped"] and found["last_cell"] in wrong["cells"] and "❌" in found["red_box"]
              and not TRACEBACK.search(text))
        line = first_line_with(found["red_box"] if found["last_cell"] in wrong["cells"] else text,
                               ("❌", "Error", "✅")) or "(accepted: no message)"
        if TRACEBACK.search(text):
            line = "TRACEBACK: " + first_line_with(text, ("Error", "❌"))
        if found["stopped"] and found["last_cell"] > wrong["cells"][-1]:  # a queued cell ran after the red box
            line += f" | then cell {found['last_cell']} ran too: {first_line_with(found['red_box'], ('Error',))}"
        results.append(group_result(entry, wrong, cells, page, shots, ok, line, found))
        if found["stopped"] and found["last_cell"] > wrong["cells"][-1]:
            screenshot(page, found["last_cell"], shots / f"L{entry['lesson']}_ex{wrong['exercise']}_wrong_ran_on.png")
            results[-1]["screenshots"].append(str(shots / f"L{entry['lesson']}_ex{wrong['exercise']}_wrong_ran_on.png"))
        if found["stopped"] and found["last_cell"] < wrong["cells"][0]:
            results[-1]["line"] = f"stopped before the exercise, at cell {found['last_cell']}: {found['red_box'][:80]}"
            break
        run_cells(page, right["cells"])
        cells = page.evaluate(CELLS_SCRIPT)
        text = group_text(cells, right)
        ok = "✅" in text and "❌" not in text and not TRACEBACK.search(text)
        line = ("TRACEBACK: " if TRACEBACK.search(text) else "") + first_line_with(text, ("❌", "Error", "✅"))
        results.append(group_result(entry, right, cells, page, shots, ok, line, analyse(cells)))
        select_cell(page, skip["cells"][0])
        menu(page, "Run", "Run Selected Cell and All Below")
        time.sleep(2)
        wait_until_done(page)
        cells = page.evaluate(CELLS_SCRIPT)
        found = analyse(cells)
        text = group_text(cells, skip)
        went_on = (not found["stopped"] if following is None
                   else found["stopped"] and found["last_cell"] >= following["cells"][0])
        ok = went_on and "❌" not in text and not TRACEBACK.search(text)
        line = first_line_with(text, ("❌", "Error", "✅", "🔑", "skip")) or "(no output)"
        if TRACEBACK.search(text):
            line = "TRACEBACK: " + line
        if not went_on:
            line += f" | stopped at cell {found['last_cell']}: {first_line_with(found['red_box'], ('Error', '❌'))}"
        results.append(group_result(entry, skip, cells, page, shots, ok, line, found))
    return results


def reopen(page: Page, base: str, token: str, path: str, shots: Path, lesson: str) -> dict:
    """Save the finished notebook, stop its kernel, open it again (a new kernel, as the next day) and look for
    widgets that cannot be displayed. The picture shows the first progress bar's cell."""
    if page.locator(".jp-NotebookPanel").count():
        select_cell(page, 0)
        page.keyboard.press("Control+s")
        time.sleep(3)
    shut_down_kernels(base, token)
    open_notebook(page, base, token, path)
    time.sleep(5)
    cells = page.evaluate(CELLS_SCRIPT)
    text = page.inner_text(".jp-NotebookPanel")
    count = text.count("Error displaying widget")
    bars = [index for index, cell in enumerate(cells)
            if any("widget" in o["mime"] or "Error displaying widget" in o["text"]
                   or re.search(r"\d+/\d+ (batch|epoch)", o["text"]) for o in cell["outputs"])]
    picture = shots / f"L{lesson}_reopened.png"
    if bars:
        screenshot(page, bars[0], picture)
    else:
        page.screenshot(path=str(picture))
    return {"lesson": lesson, "variant": "reopened", "kind": "reopen", "ok": count == 0,
            "line": f"{count} x 'Error displaying widget'", "screenshots": [str(picture)]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--walk-dir", type=Path, default=Path("/tmp/walk"))
    parser.add_argument("--lessons", nargs="*", default=None, help="lesson numbers, e.g. 01 02 (default: all)")
    parser.add_argument("--kinds", nargs="*", default=["student", "combined", "stale"],
                        help="student, combined (one kernel per lesson: wrong, right, skip of every exercise), "
                             "stale, or wrong, right, skip (one Run All per variant: slower); reopen alone: "
                             "reopen the combined notebooks the last walk saved")
    parser.add_argument("--fresh", action="store_true", help="delete the walk's outputs/ first (no earlier caches)")
    arguments = parser.parse_args()
    walk = arguments.walk_dir
    shots = walk / "shots"
    shots.mkdir(parents=True, exist_ok=True)
    if arguments.fresh and (walk / "outputs").is_dir():
        shutil.rmtree(walk / "outputs")
    reopen_only = arguments.kinds == ["reopen"]
    if not reopen_only:  # "reopen" alone reopens the combined notebooks an earlier walk saved
        shutil.rmtree(walk / "notebooks", ignore_errors=True)
        subprocess.run([str(PROJECT / ".venv/bin/python"), str(Path(__file__).with_name("walk_variants.py")),
                        str(walk / "notebooks")], check=True)
    plan = json.loads((walk / "notebooks" / "plan.json").read_text())
    plan = [{**e, "kind": "reopen"} if reopen_only and e["kind"] == "combined" else e for e in plan]
    plan = [e for e in plan if (arguments.lessons is None or e["lesson"] in arguments.lessons)
            and e["kind"] in arguments.kinds]
    port, token = free_port(), secrets.token_hex(16)
    base = f"http://127.0.0.1:{port}"
    server = start_server(walk, port, token)
    results_path = walk / "results.json"
    results = json.loads(results_path.read_text()) if results_path.exists() else []
    try:
        with sync_playwright() as playwright:
            browser = playwright.chromium.launch(executable_path="/usr/bin/chromium", headless=True)
            page = browser.new_page(viewport={"width": 1400, "height": 1000})
            for entry in plan:
                entry["exercise_cell"] = entry["cells"][str(entry["exercise"])]
                started = time.monotonic()
                try:
                    if entry["kind"] == "reopen":
                        found = [reopen(page, base, token, entry["path"], shots, entry["lesson"])]
                    elif entry["kind"] == "combined":
                        found = walk_combined(page, base, token, entry, shots)
                        if found and found[-1]["ok"] and len(found) == len(entry["groups"]):
                            found.append(reopen(page, base, token, entry["path"], shots, entry["lesson"]))
                    else:
                        found = [walk_one(page, base, token, entry, shots)]
                except Exception as error:  # a walk step that failed is a result too
                    page.screenshot(path=str(shots / f"L{entry['lesson']}_{entry['variant']}_walk_error.png"))
                    found = [{"lesson": entry["lesson"], "variant": entry["variant"], "kind": entry["kind"],
                              "ok": False, "line": f"walk error: {type(error).__name__}: {str(error)[:200]}",
                              "screenshots": []}]
                found[-1]["seconds"] = round(time.monotonic() - started)
                last_exercise = max(int(n) for n in entry["cells"])
                if entry["kind"] == "skip" and entry["exercise"] == last_exercise and found[-1]["ok"]:
                    found.append(reopen(page, base, token, entry["path"], shots, entry["lesson"]))
                for result in found:
                    print(("PASS " if result["ok"] else "FAIL ") + f"L{result['lesson']} {result['variant']}: "
                          f"{result['line']}", flush=True)
                results.extend(found)
                results_path.write_text(json.dumps(results, indent=1, ensure_ascii=False))
                shut_down_kernels(base, token)
            browser.close()
    finally:
        server.terminate()
        server.wait(timeout=30)
    table = ["| lesson | variant | result | shown |", "|---|---|---|---|"]
    table += [f"| {r['lesson']} | {r['variant']} | {'ok' if r['ok'] else 'FAIL'} | {r['line'][:80]} |"
              for r in results]
    (walk / "results.md").write_text("\n".join(table) + "\n")
    print(f"walk: {sum(r['ok'] for r in results)} of {len(results)} as expected; see {walk / 'results.md'}")
    sys.exit(0 if all(r["ok"] for r in results) else 1)


if __name__ == "__main__":
    main()
