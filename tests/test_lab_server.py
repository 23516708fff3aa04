"""The README's main command: JupyterLab on 127.0.0.1 with a token, configured from lab/ only."""

import urllib.error
import urllib.request
from pathlib import Path

import pytest
from labserver import running_lab


@pytest.fixture(scope="module")
def lab_server(tmp_path_factory):
    with running_lab(tmp_path_factory.mktemp("lab")) as lab:
        yield lab


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
