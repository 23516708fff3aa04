"""The README's main command: JupyterLab on 127.0.0.1 with a token, configured from lab/ only; one printed line
with the URL that logs in; `bash bin/lab list` finds the server; saving a notebook leaves `git status` clean."""

import json
import runpy
import subprocess
import urllib.error
import urllib.request
from pathlib import Path

import pytest
from labserver import ROOT, running_lab


@pytest.fixture(scope="module")
def lab_server(tmp_path_factory):
    with running_lab(tmp_path_factory.mktemp("lab")) as lab:
        yield lab


def get(url: str, **headers):
    return urllib.request.urlopen(urllib.request.Request(url, headers=headers), timeout=20)


def test_prints_one_line_with_the_whole_url_that_logs_in(lab_server):
    lines = lab_server["stdout"].read_text().splitlines()
    announced = [line for line in lines if line.startswith("swiftlab lab: open ")]
    assert len(announced) == 1, lines
    assert announced[0].startswith(f"swiftlab lab: open {lab_server['base']}/lab?token=")
    assert "Ctrl-C" in announced[0] and "bin/lab stop" in announced[0]  # how to stop it
    assert len(lab_server["token"]) >= 16 and "..." not in lab_server["url"]
    page = get(lab_server["url"])  # exactly as printed, no cookie: the token in it is the login
    assert page.status == 200 and page.url.startswith(f"{lab_server['base']}/lab")  # not the login page
    assert "JupyterLab" in page.read().decode()


def test_the_token_is_on_no_command_line(lab_server):
    """Every local user can read every process's command line (`ps`); the token must not be in any of them:
    bin/lab hands it to Jupyter and to its announcer in a file only this user can read."""
    listed = subprocess.run(["ps", "-eww", "-o", "args="], capture_output=True, text=True, check=True).stdout
    assert "jupyter" in listed  # the server is in the list: the check below looks where the token would be
    assert lab_server["token"] not in listed
    for cmdline in Path("/proc").glob("[0-9]*/cmdline"):
        try:
            assert lab_server["token"].encode() not in cmdline.read_bytes()
        except (FileNotFoundError, ProcessLookupError, PermissionError):
            pass  # a process that ended while we looked
    token_files = list((ROOT / ".lab" / "runtime").glob("swiftlab-token-*"))
    assert any(f.read_text() == lab_server["token"] for f in token_files)
    assert all(f.stat().st_mode & 0o077 == 0 for f in token_files)  # this user's only


def test_token_is_required(lab_server):
    with pytest.raises(urllib.error.HTTPError) as err:
        get(f"{lab_server['base']}/api/contents")
    assert err.value.code == 403
    ok = get(f"{lab_server['base']}/api/contents?token={lab_server['token']}")
    names = {item["name"] for item in json.loads(ok.read())["content"]}
    assert "01-speculative-decoding.ipynb" in names  # it serves the notebooks folder


def test_bound_to_localhost_and_opens_the_first_notebook(lab_server):
    text = lab_server["log"].read_text()
    assert "127.0.0.1" in text and "0.0.0.0" not in text
    assert "Overriding existing pre_save_hook" not in text
    page = get(f"{lab_server['base']}/lab/tree/01-speculative-decoding.ipynb?token={lab_server['token']}").read()
    assert "JupyterLab" in page.decode()


def test_bin_lab_list_finds_the_server_and_its_token(lab_server):
    """What the login page advises (`jupyter server list`), with the lab's environment: `bash bin/lab list`."""
    listed = subprocess.run(["bash", str(ROOT / "bin" / "lab"), "list"], env=lab_server["env"],
                            capture_output=True, text=True, timeout=120)
    assert listed.returncode == 0, listed.stderr
    assert f"{lab_server['base']}/?token={lab_server['token']}" in listed.stdout + listed.stderr


def test_nothing_written_to_home(lab_server):
    assert list(Path(lab_server["home"]).rglob("*")) == []


def run_state(notebook: dict, python_version: str = "3.0.1") -> dict:
    """The notebook as JupyterLab sends it after Run All: outputs, counts, timings, widget state, the kernel's
    Python version."""
    ran = json.loads(json.dumps(notebook))
    for n, cell in enumerate(c for c in ran["cells"] if c["cell_type"] == "code"):
        cell["execution_count"] = n + 1
        cell["outputs"] = [{"output_type": "display_data", "metadata": {},
                            "data": {"application/vnd.jupyter.widget-view+json": {
                                "model_id": "f" * 32, "version_major": 2, "version_minor": 0},
                                "text/plain": ["Box()"]}}]
        cell["metadata"]["execution"] = {"iopub.status.busy": "2026-11-27T15:00:00.000Z"}
        cell["metadata"]["scrolled"] = True
    ran["metadata"]["widgets"] = {"application/vnd.jupyter.widget-state+json": {"state": {}, "version_major": 2,
                                                                                "version_minor": 0}}
    ran["metadata"]["language_info"]["version"] = python_version
    return ran


def test_saving_a_run_notebook_leaves_git_status_clean(lab_server):
    name = "01-speculative-decoding.ipynb"
    path, api = ROOT / "notebooks" / name, f"{lab_server['base']}/api/contents/{name}?token={lab_server['token']}"
    before = path.read_bytes()
    notebook = json.loads(get(api).read())["content"]
    body = json.dumps({"type": "notebook", "format": "json", "content": run_state(notebook)}).encode()
    try:
        urllib.request.urlopen(urllib.request.Request(api, data=body, method="PUT"), timeout=20)
        assert path.read_bytes() == before
    finally:
        path.write_bytes(before)
    status = subprocess.run(["git", "status", "--porcelain", "notebooks"], cwd=ROOT, capture_output=True, text=True)
    assert status.stdout == ""
    reopened = json.loads(get(api).read())["content"]  # what a reopened tab shows: no widget views of a dead kernel
    assert all(not c.get("outputs") for c in reopened["cells"]) and "widgets" not in reopened["metadata"]


@pytest.fixture(scope="module")
def strip_run_state():
    return runpy.run_path(str(ROOT / "lab" / "notebook_save.py"))["strip_run_state"]


class FakeContents:
    def __init__(self, root_dir):
        self.root_dir = str(root_dir)


def test_the_save_hook_keeps_what_the_author_wrote(strip_run_state):
    notebook = json.loads((ROOT / "notebooks" / "01-speculative-decoding.ipynb").read_text())
    edited = run_state(notebook)
    edited["cells"][0]["source"] = "# my own note\n"
    edited["cells"][0]["metadata"]["tags"] = ["mine"]
    model = {"type": "notebook", "content": edited}
    strip_run_state(model, "01-speculative-decoding.ipynb", FakeContents(ROOT / "notebooks"))
    saved = model["content"]
    assert saved["cells"][0]["source"] == "# my own note\n" and saved["cells"][0]["metadata"]["tags"] == ["mine"]
    assert saved["metadata"]["language_info"] == notebook["metadata"]["language_info"]
    code = [c for c in saved["cells"] if c["cell_type"] == "code"]
    assert code and all(c["outputs"] == [] and c["execution_count"] is None for c in code)
    assert all("execution" not in c["metadata"] and "scrolled" not in c["metadata"] for c in code)


def test_the_save_hook_leaves_other_files_and_new_notebooks_alone(strip_run_state, tmp_path):
    text = {"type": "file", "content": "x = 1\n"}
    strip_run_state(text, "notes.py", FakeContents(tmp_path))
    assert text == {"type": "file", "content": "x = 1\n"}
    new = run_state(json.loads((ROOT / "notebooks" / "01-speculative-decoding.ipynb").read_text()), "3.12.1")
    strip_run_state({"type": "notebook", "content": new}, "new.ipynb", FakeContents(tmp_path))
    assert new["metadata"]["language_info"]["version"] == "3.12.1"  # nothing on disk to keep it from
