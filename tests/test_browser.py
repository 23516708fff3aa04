"""The lab in a real browser: Debian's Chromium, driven by Playwright, against the README's main command.

What a user does: start `bash bin/lab`, open the URL it prints (exactly that line, token included), and for each
notebook in notebooks/ (discovered, so new notebooks are covered): Run > Run All Cells, wait until every cell
has run, then use every widget once: click every button and toggle, tick every checkbox, move every slider one
step, pick another value in every dropdown, waiting for the kernel after each. The test fails on any error output
or traceback in a cell, on "Error displaying widget" and on a traceback the kernel logs from a widget callback.

Sizes: the notebooks run at their quick sizes (SWIFTLAB_QUICK=1). Run All alone at the user sizes takes 4.6 minutes
for all seven (nbconvert, 2 idle cores; the times are in notebooks/README.md), but using every widget at those sizes
does not fit: a trial sat over 8 minutes in notebook 2 alone (the editor recomputes matchness on each of its 32
toggles, the explorer's "measure" decodes 3 strategies x 3 ratios x 2 prompts x 2 repeats), on top of a suite that
already takes 15 minutes.
The lab serves the repository's own notebooks, as for a user; its save hook strips what the run adds, so
afterwards `git status --porcelain` must be what it was before (empty on a clean clone).

A full-height screenshot per notebook lands in /tmp/swiftlab-screens (SWIFTLAB_SCREENS picks another folder;
`-s` prints the paths). `test_a_notebook_on_another_model` runs notebook 1 with SWIFTLAB_MODEL=smollm2-135m in
the kernels' environment, when that model is installed.
"""

import json
import os
import re
import shutil
import subprocess
import time
import urllib.request
from contextlib import contextmanager
from pathlib import Path

import pytest
from labserver import ROOT, running_lab

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
pytestmark = pytest.mark.skipif(not Path(CHROMIUM).exists(),
                                reason="Debian's chromium is not installed (bin/test installs it when run as root)")
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
        "--disable-component-update", "--disable-sync"]
NOTEBOOKS = sorted(p.name for p in (ROOT / "notebooks").glob("*.ipynb"))
SCREENS = Path(os.environ.get("SWIFTLAB_SCREENS", "/tmp/swiftlab-screens"))
LONG = 900_000  # ms: a whole notebook, or one widget's work, on a busy 2-core machine
ACTION = 60_000  # ms: a click or a key press (what it starts is awaited through the kernel's state)
OTHER_MODEL = "smollm2-135m"
# what a failed cell or widget shows: IPython's traceback header, ipywidgets' failed view
ERROR_TEXT = re.compile(r"Traceback \(most recent call last\)|Error displaying widget")
# what the kernel writes to the server's log when a widget callback raises (ipykernel's "Exception in comm_msg")
KERNEL_ERROR = re.compile(r"\[IPKernelApp\] ERROR|Exception in comm_msg")
ERROR_LINE = re.compile(r"^(\w+\.)*\w*(Error|Exception|Interrupt)\b", re.MULTILINE)  # `ValueError: ...`
STDERR = "application/vnd.jupyter.stderr"
# every kind of control ipywidgets draws, and what the test does with it
# (inside cell outputs: the notebook's own toolbar has buttons too)
BUTTONS = ".jp-OutputArea-output button:not(.modebar-btn)"  # not plotly's zoom/pan/... bar
CHECKBOXES = ".jp-OutputArea-output input[type=checkbox]"
SLIDERS = ".jp-OutputArea-output .noUi-handle"
DROPDOWNS = ".jp-OutputArea-output select"


def git_status() -> str:
    return subprocess.run(["git", "status", "--porcelain"], cwd=ROOT, capture_output=True, text=True).stdout


@pytest.fixture(scope="module")
def screens():
    SCREENS.mkdir(parents=True, exist_ok=True)
    for old in SCREENS.glob("*.png"):
        old.unlink()
    print("\nscreenshots:", SCREENS)
    return SCREENS


@pytest.fixture(scope="module")
def browser():
    sync_api = pytest.importorskip("playwright.sync_api")
    with sync_api.sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        yield b
        b.close()


@contextmanager
def lab_leaving_git_clean(workdir: Path, **env):
    before = git_status()
    # the kernels inherit the server's environment: the notebooks' parameter cells read SWIFTLAB_QUICK
    with running_lab(workdir, SWIFTLAB_QUICK="1", **env) as server:
        yield server
    assert git_status() == before, "using the lab changed files in the repository"


@pytest.fixture(scope="module")
def lab(tmp_path_factory):
    with lab_leaving_git_clean(tmp_path_factory.mktemp("browser")) as server:
        yield server


def logged_in(browser, lab):
    """A browser context that opened the URL exactly as bin/lab printed it: the token in it logs it in."""
    context = browser.new_context(viewport={"width": 1500, "height": 1000})
    context.set_default_timeout(ACTION)
    page = context.new_page()
    page.goto(lab["url"], timeout=LONG)
    page.locator(".jp-DirListing-item").first.wait_for(timeout=LONG)  # the lab is up in the page
    assert "/login" not in page.url
    return context, page


@pytest.fixture(scope="module")
def context(browser, lab):
    context, page = logged_in(browser, lab)
    page.close()
    shut_down_kernels(lab)  # the layout opens notebook 1, which starts a kernel
    yield context
    context.close()


@pytest.fixture
def page(context):
    page = context.new_page()
    yield page
    page.close()


# --- the server's side: is the kernel done? ---

def api(lab, path: str, method: str = "GET"):
    request = urllib.request.Request(f"{lab['base']}/api/{path}?token={lab['token']}", method=method)
    with urllib.request.urlopen(request, timeout=30) as answer:
        body = answer.read()
    return json.loads(body) if body else None


def wait_idle(lab, settle_s: float = 2.0, timeout_s: float = LONG / 1000) -> None:
    """Until every kernel has been idle for settle_s in a row (Run All goes idle between cells)."""
    deadline, quiet_since = time.monotonic() + timeout_s, None
    while time.monotonic() < deadline:
        states = [k["execution_state"] for k in api(lab, "kernels")]
        if "dead" in states:
            pytest.fail("the kernel died")
        busy = any(state != "idle" for state in states)
        quiet_since = None if busy else (quiet_since or time.monotonic())
        if quiet_since and time.monotonic() - quiet_since >= settle_s:
            return
        time.sleep(0.5)
    pytest.fail(f"the kernel was still busy after {timeout_s:.0f} s")


def shut_down_kernels(lab) -> None:
    for kernel in api(lab, "kernels"):
        api(lab, f"kernels/{kernel['id']}", method="DELETE")


# --- the browser's side ---

def open_notebook(page, lab, name: str):
    page.goto(f"{lab['base']}/lab/tree/{name}?reset", timeout=LONG)
    panel = page.locator(".jp-NotebookPanel:visible")
    panel.locator(".jp-Cell").first.wait_for(timeout=LONG)
    page.locator(".jp-Notebook-ExecutionIndicator[data-status='idle']").first.wait_for(state="attached",
                                                                                       timeout=LONG)
    return panel


def run_all(page, panel, lab) -> None:
    """Run > Run All Cells, as a user does; then wait until no cell is queued or running and the kernel rests.
    A menu click can be lost while the notebook is still settling, so it is retried until a cell is queued."""
    from playwright.sync_api import TimeoutError as PlaywrightTimeout

    code_prompts = panel.locator(".jp-CodeCell .jp-InputArea-prompt")
    for _ in range(6):
        panel.locator(".jp-Cell").first.click()  # the notebook has the focus, so the menu acts on it
        page.locator(".lm-MenuBar-itemLabel", has_text=re.compile(r"^Run$")).click()
        page.locator(".lm-Menu-itemLabel", has_text=re.compile(r"^Run All Cells$")).click()
        try:
            page.wait_for_function(r"els => els.some(el => /\[(\*|\d+)\]/.test(el.innerText))",
                                   arg=code_prompts.element_handles(), timeout=10_000)
            break
        except PlaywrightTimeout:
            page.keyboard.press("Escape")
    else:
        pytest.fail("Run All Cells did not start the notebook")
    while True:
        page.wait_for_function(r"els => els.every(el => !el.innerText.includes('*'))",
                               arg=code_prompts.element_handles(), timeout=LONG)
        wait_idle(lab)
        if all("*" not in text for text in code_prompts.all_inner_texts()):
            break


def errors_shown(panel) -> list[str]:
    """Error outputs (JupyterLab draws them as stderr: a traceback, or a bare `SyntaxError: ...`), failed
    widget views, and errors a widget caught in background work."""
    stderr = panel.locator(f".jp-OutputArea-output[data-mime-type='{STDERR}']").all_inner_texts()
    shown = [text for text in stderr if ERROR_LINE.search(text)]
    shown += [text for text in panel.locator(".jp-OutputArea-output").all_inner_texts() if ERROR_TEXT.search(text)]
    # what a widget's background work caught (it reaches no cell's output): swiftlab widgets mark it so
    shown += panel.locator(".swiftlab-error").all_inner_texts()
    return [text[-2000:] for text in shown]


def log_console_text(page, panel) -> str:
    """What JupyterLab's log console shows for this notebook: where the kernel's output from widget callbacks
    goes (an exception in a button's handler shows there, not in a cell)."""
    panel.locator(".jp-Cell").first.click()
    page.locator(".lm-MenuBar-itemLabel", has_text=re.compile(r"^View$")).click()
    page.locator(".lm-Menu-itemLabel", has_text=re.compile(r"^Show Log Console$")).click()
    console = page.locator(".jp-LogConsolePanel").first
    console.wait_for()
    page.wait_for_timeout(1000)
    return console.inner_text()


def unrun_cells(panel) -> int:
    prompts = panel.locator(".jp-CodeCell .jp-InputArea-prompt").all_inner_texts()
    return sum(not re.search(r"\[\d+\]", text) for text in prompts)


def use_every_widget(page, panel, lab) -> int:
    """Each control once, in page order; the kernel's answer awaited after each. Returns how many were used."""
    used = 0
    for selector, act in ((BUTTONS, lambda el: el.click()),
                          (CHECKBOXES, lambda el: el.click()),
                          (SLIDERS, step_slider),
                          (DROPDOWNS, pick_another_option)):
        controls, done = panel.locator(selector), 0
        # a click can redraw a widget, so controls are looked up again by position each time
        while done < controls.count():
            control = controls.nth(done)
            done += 1
            if not control.is_visible() or not control.is_enabled():
                continue  # disabled meanwhile (e.g. "step" once the stepper reached the end)
            control.scroll_into_view_if_needed()
            label = control.evaluate("el => el.title || el.innerText || el.getAttribute('aria-label') || ''")
            started = time.monotonic()
            act(control)
            used += 1
            page.wait_for_timeout(300)  # let the browser send the change
            wait_idle(lab, settle_s=1.0)
            print(f"  {selector.split()[-1]} {label.strip()[:40]!r}: {time.monotonic() - started:.1f} s", flush=True)
    return used


def step_slider(handle) -> None:
    handle.focus()
    handle.press("ArrowRight")


def pick_another_option(select) -> None:
    options = select.locator("option").all_inner_texts()
    current = select.evaluate("el => el.selectedIndex")
    if len(options) > 1:
        select.select_option(index=(current + 1) % len(options))


def screenshot_whole_notebook(page, panel, path: Path) -> None:
    """The notebook scrolls inside the lab's window: make the window as tall as the notebook for one picture."""
    scroller = panel.locator(".jp-WindowedPanel-outer").first
    height = scroller.evaluate("el => el.scrollHeight")
    page.set_viewport_size({"width": 1500, "height": min(max(1000, height + 150), 16_000)})
    scroller.evaluate("el => el.scrollTo(0, 0)")
    page.wait_for_timeout(1500)  # plotly redraws at the new size
    page.screenshot(path=path, full_page=True)
    page.set_viewport_size({"width": 1500, "height": 1000})
    print("screenshot:", path)


def save(page, panel) -> None:
    panel.locator(".jp-Cell").first.click()
    page.keyboard.press("Control+s")
    page.locator(".lm-TabBar-tab.jp-mod-current.jp-mod-dirty").wait_for(state="detached")


def run_notebook_as_a_user(page, lab, name: str, screens: Path, prefix: str = "") -> int:
    """Run All, use every widget, save, reopen; a screenshot after the run and one after the widgets."""
    log_start, stem = lab["log"].stat().st_size, prefix + name.removesuffix(".ipynb")
    panel = open_notebook(page, lab, name)
    try:
        run_all(page, panel, lab)
        screenshot_whole_notebook(page, panel, screens / f"{stem}.png")
        assert not errors_shown(panel), f"{name} shows errors after Run All:\n" + "\n".join(errors_shown(panel))
        assert unrun_cells(panel) == 0, f"{name}: {unrun_cells(panel)} code cells did not run"
        used = use_every_widget(page, panel, lab)
        screenshot_whole_notebook(page, panel, screens / f"{stem}-widgets-used.png")
        assert not errors_shown(panel), f"{name} shows errors after using its widgets:\n" + \
            "\n".join(errors_shown(panel))
        logged = log_console_text(page, panel)
        assert not (ERROR_TEXT.search(logged) or ERROR_LINE.search(logged)), \
            f"{name}: a widget callback failed (JupyterLab's log console):\n{logged[-4000:]}"
        with open(lab["log"]) as log:  # and what the kernel writes to its own log
            log.seek(log_start)
            logged = log.read()
        assert not KERNEL_ERROR.search(logged), f"{name}: the kernel logged an error:\n{logged[-4000:]}"
        save(page, panel)  # the lab's save hook keeps the file as committed (the lab fixture checks git status)
        reopened = open_notebook(page, lab, name)
        assert not errors_shown(reopened) and "model not found" not in reopened.inner_text()
        return used
    except BaseException:  # pytest.fail's exception included
        page.screenshot(path=screens / f"{stem}-failed.png")  # what the page showed when it failed
        print("screenshot:", screens / f"{stem}-failed.png")
        raise
    finally:
        shut_down_kernels(lab)  # one notebook's kernel at a time on a small machine


def test_the_lab_opens_on_the_readme_and_the_first_notebook(browser, lab, screens):
    context, page = logged_in(browser, lab)
    page.locator(".lm-TabBar-tab:has-text('01-speculative-decoding.ipynb')").wait_for()
    page.locator(".lm-TabBar-tab:has-text('README.md')").wait_for()
    page.locator(".jp-DirListing-item", has_text="02-").wait_for()  # the file browser lists the notebooks
    page.screenshot(path=screens / "00-first-minute.png")
    print("screenshot:", screens / "00-first-minute.png")
    context.close()
    shut_down_kernels(lab)
    # the committed workspace is a template: using the lab never rewrites it
    committed = json.loads((ROOT / "lab" / "workspaces" / "default-37a8.jupyterlab-workspace").read_text())
    assert committed["data"]["layout-restorer:data"]["main"]["current"] == "notebook:01-speculative-decoding.ipynb"


@pytest.mark.parametrize("name", NOTEBOOKS)
def test_run_all_then_use_every_widget(page, lab, screens, name):
    used = run_notebook_as_a_user(page, lab, name, screens)
    print(f"{name}: ran, {used} widget controls used")


def installed(model_name: str) -> bool:
    import swiftlab

    try:
        swiftlab.load_model(model_name)
    except Exception:  # not known on this branch, or its weights are not on this machine
        return False
    return True


@pytest.fixture(scope="module")
def other_model_lab(tmp_path_factory):
    if not installed(OTHER_MODEL):
        pytest.skip(f"{OTHER_MODEL} is not installed")
    with lab_leaving_git_clean(tmp_path_factory.mktemp("other-model"), SWIFTLAB_MODEL=OTHER_MODEL) as server:
        yield server


def test_a_notebook_on_another_model(browser, other_model_lab, screens):
    context, page = logged_in(browser, other_model_lab)
    try:
        run_notebook_as_a_user(page, other_model_lab, NOTEBOOKS[0], screens, prefix=f"{OTHER_MODEL}-")
    finally:
        context.close()
