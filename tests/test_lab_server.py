"""The README's main command: JupyterLab on 127.0.0.1 with a token, configured from lab/ only."""

import os
import socket
import subprocess
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def lab_server(tmp_path_factory):
    home = tmp_path_factory.mktemp("home")
    port, token = free_port(), "test-token-123"
    env = {**os.environ, "HOME": str(home), "SWIFTLAB_LAB_PORT": str(port), "SWIFTLAB_LAB_TOKEN": token}
    for var in ("JUPYTER_CONFIG_DIR", "JUPYTER_DATA_DIR", "JUPYTERLAB_SETTINGS_DIR", "IPYTHONDIR"):
        env.pop(var, None)
    log = tmp_path_factory.mktemp("log") / "lab.log"
    with open(log, "w") as out:
        proc = subprocess.Popen(["bash", str(ROOT / "bin" / "lab"), "--no-browser"], env=env, stdout=out,
                                stderr=subprocess.STDOUT, start_new_session=True)
    url = f"http://127.0.0.1:{port}"
    for _ in range(120):
        try:
            urllib.request.urlopen(f"{url}/api/status?token={token}", timeout=2)
            break
        except (urllib.error.URLError, ConnectionError):
            time.sleep(0.5)
    else:
        proc.kill()
        pytest.fail("the lab did not start:\n" + log.read_text()[-3000:])
    yield {"url": url, "token": token, "home": home, "log": log, "proc": proc}
    os.killpg(proc.pid, 15)
    proc.wait(30)


def test_token_is_required(lab_server):
    with pytest.raises(urllib.error.HTTPError) as err:
        urllib.request.urlopen(f"{lab_server['url']}/api/contents", timeout=5)
    assert err.value.code == 403
    ok = urllib.request.urlopen(f"{lab_server['url']}/api/contents?token={lab_server['token']}", timeout=5)
    names = {item["name"] for item in __import__("json").loads(ok.read())["content"]}
    assert "01-speculative-decoding.ipynb" in names  # it serves the notebooks folder


def test_bound_to_localhost_and_opens_the_first_notebook(lab_server):
    text = lab_server["log"].read_text()
    assert "127.0.0.1" in text and "0.0.0.0" not in text
    page = urllib.request.urlopen(f"{lab_server['url']}/lab/tree/01-speculative-decoding.ipynb?token="
                                  f"{lab_server['token']}", timeout=10).read().decode()
    assert "JupyterLab" in page or "jupyter" in page.lower()


def test_nothing_written_to_home(lab_server):
    assert list(Path(lab_server["home"]).rglob("*")) == []
