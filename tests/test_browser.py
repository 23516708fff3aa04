"""The lab in a real browser: Debian's Chromium, driven by Playwright, against the README's main command.

What a first-time user does: the lab opens on the README and the first notebook; they run a notebook, toggle a
sub-layer in the skip-set editor and see matchness and the heatmap change; they press the optimization monitor's
buttons and see the trajectory grow. Screenshots land in the test's temp dir (printed with -s).
"""

import json
import re
import shutil
from pathlib import Path

import pytest
from labserver import ROOT, running_lab

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
pytestmark = pytest.mark.skipif(not Path(CHROMIUM).exists(),
                                reason="Debian's chromium is not installed (bin/test installs it when run as root)")
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
        "--disable-component-update", "--disable-sync"]
LONG = 300_000  # ms: loading the model and the first probes on a busy 2-core machine


@pytest.fixture(scope="module")
def lab(tmp_path_factory):
    workdir = tmp_path_factory.mktemp("browser")
    # JupyterLab autosaves what the test runs: serve a copy, so the repository's notebooks stay stripped
    notebooks = workdir / "notebooks"
    shutil.copytree(ROOT / "notebooks", notebooks)
    before = {p.name: p.read_bytes() for p in (ROOT / "notebooks").glob("*.ipynb")}
    # the kernels inherit the server's environment: the notebooks' parameter cells read SWIFTLAB_QUICK
    with running_lab(workdir, root=notebooks, SWIFTLAB_QUICK="1") as server:
        yield {**server, "shots": workdir}
    assert {p.name: p.read_bytes() for p in (ROOT / "notebooks").glob("*.ipynb")} == before


@pytest.fixture(scope="module")
def browser():
    sync_api = pytest.importorskip("playwright.sync_api")
    with sync_api.sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        yield b
        b.close()


@pytest.fixture
def page(browser, lab, request):
    context = browser.new_context(viewport={"width": 1500, "height": 1100})
    page = context.new_page()
    yield page
    page.screenshot(path=lab["shots"] / f"last-{request.node.name}.png")  # what the page showed at the end
    context.close()


def open_notebook(page, lab, name: str):
    page.goto(f"{lab['url']}/lab/tree/{name}?reset&token={lab['token']}")
    panel = page.locator(".jp-NotebookPanel:visible")
    panel.locator(".jp-Cell").first.wait_for(timeout=LONG)
    # wait for the kernel, so that the first Shift+Enter is not lost while it starts
    page.locator(".jp-Notebook-ExecutionIndicator[data-status='idle'], "
                 ".jp-Toolbar-kernelStatus:has-text('Idle')").first.wait_for(state="attached", timeout=LONG)
    return panel


def run_cells(page, panel, *contents: str) -> None:
    """Run the code cells holding these texts, in order, as a user does: click into one, Shift+Enter.
    A key press can be lost while the notebook is still settling (seen in CI-like runs), so each cell
    is retried until its prompt shows it queued or run ([*] or [n])."""
    from playwright.sync_api import TimeoutError as PlaywrightTimeout

    for text in contents:
        cell = panel.locator(".jp-CodeCell", has_text=text).first
        prompt = cell.locator(".jp-InputArea-prompt").first
        for _ in range(6):
            cell.locator(".jp-InputArea-editor").click()
            page.keyboard.press("Shift+Enter")
            try:
                page.wait_for_function(r"el => /\[(\*|\d+)\]/.test(el.innerText)", arg=prompt.element_handle(),
                                       timeout=10_000)
                break
            except PlaywrightTimeout:
                continue
        else:
            pytest.fail(f"the cell holding {text!r} never started running")


def plotly_data(locator):
    return locator.evaluate("gd => gd.data.map(t => ({x: t.x, y: t.y, z: t.z}))")


def test_the_lab_opens_on_the_readme_and_the_first_notebook(page, lab):
    page.goto(f"{lab['url']}/lab?token={lab['token']}")
    tab = page.locator(".lm-TabBar-tab:has-text('01-speculative-decoding.ipynb')")
    tab.wait_for(timeout=LONG)
    page.locator(".lm-TabBar-tab:has-text('README.md')").wait_for(timeout=LONG)
    page.locator(".jp-NotebookPanel:visible h1", has_text="Speculative decoding from scratch").wait_for(timeout=LONG)
    page.locator(".jp-DirListing-item", has_text="02-layer-sparsity").wait_for(timeout=LONG)  # the file browser
    page.screenshot(path=lab["shots"] / "first-minute.png")
    print("screenshot:", lab["shots"] / "first-minute.png")
    # the committed workspace is a template: using the lab never rewrites it
    committed = json.loads((ROOT / "lab" / "workspaces" / "default-37a8.jupyterlab-workspace").read_text())
    assert committed["data"]["layout-restorer:data"]["main"]["current"] == "notebook:01-speculative-decoding.ipynb"


def test_skip_set_editor_toggle_updates_matchness_and_heatmap(page, lab):
    panel = open_notebook(page, lab, "02-layer-sparsity.ipynb")
    run_cells(page, panel, "# Parameters", "sublayer_importance(model", "SkipSetEditor(model")
    editor = panel.locator(".swiftlab-skipset-editor")
    status = editor.locator(".swiftlab-matchness")
    status.filter(has_text="matchness on").wait_for(timeout=LONG)
    before = status.inner_text()
    heatmap = editor.locator(".js-plotly-plot").first
    heatmap.wait_for(timeout=LONG)
    z_before = plotly_data(heatmap)[0]["z"]
    skipped = int(re.search(r"\((\d+) of", before).group(1))

    editor.locator("button[title='attention 5']").click()  # one click on the grid
    page.wait_for_function("([el, old]) => el.innerText !== old", arg=[status.element_handle(), before],
                           timeout=LONG)
    after = status.inner_text()
    page.wait_for_function("([gd, old]) => gd.data[0].z[0][5] !== old", arg=[heatmap.element_handle(),
                                                                            z_before[0][5]], timeout=LONG)
    z_after = plotly_data(heatmap)[0]["z"]
    editor.screenshot(path=lab["shots"] / "skipset-editor.png")
    print("screenshot:", lab["shots"] / "skipset-editor.png")

    now = int(re.search(r"\((\d+) of", after).group(1))
    assert abs(now - skipped) == 1, (before, after)  # exactly the clicked sub-layer changed
    assert z_after[0][5] != z_before[0][5] and z_after[1] == z_before[1]
    assert float(re.search(r"matchness on \w+: ([\d.]+)", after).group(1)) >= 0


def test_optimization_monitor_buttons_grow_the_trajectory(page, lab):
    panel = open_notebook(page, lab, "03-finding-the-skip-set.ipynb")
    # the parameters and the monitor; not the cell after, which serves every prompt itself
    run_cells(page, panel, "# Parameters", "OptimizationMonitor(model")
    monitor = panel.locator(".swiftlab-optimization-monitor")
    status = monitor.locator(".swiftlab-status")
    status.filter(has_text="prompt 0/").wait_for(timeout=LONG)
    trajectory = monitor.locator(".js-plotly-plot").first
    trajectory.wait_for(timeout=LONG)

    monitor.locator("button:has-text('one prompt')").click()
    status.filter(has_text="prompt 1/").wait_for(timeout=LONG)
    monitor.locator("button:has-text('start')").click()  # serves the rest in the background
    status.filter(has_text="prompt 2/2").wait_for(timeout=LONG)
    page.wait_for_function("el => !el.disabled", arg=monitor.locator("button:has-text('start')").element_handle(),
                           timeout=LONG)  # re-enabled once the background run ends
    data = plotly_data(trajectory)
    monitor.screenshot(path=lab["shots"] / "optimization-monitor.png")
    print("screenshot:", lab["shots"] / "optimization-monitor.png")

    proposals = len(data[0]["x"] or []) + len(data[1]["x"] or [])  # random + Bayesian points
    shown = int(re.search(r"(\d+) proposals", status.inner_text()).group(1))
    assert proposals == shown > 0
    assert len(data[2]["x"]) == shown + 1  # the best-so-far line: the start set, then a point per proposal
    assert monitor.locator("button:has-text('pause')").is_disabled()
