"""Start the README's main command (bin/lab) for a test, and stop it afterwards."""

import os
import socket
import subprocess
import time
import urllib.error
import urllib.request
from contextlib import contextmanager
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextmanager
def running_lab(workdir: Path, root: Path | None = None, **extra_env):
    """bin/lab with a throwaway HOME (so a test sees anything written there), a free port, a known token;
    serving `root` instead of notebooks/ when given (a test that runs notebooks must not save into the repo)."""
    home, log = workdir / "home", workdir / "lab.log"
    home.mkdir(parents=True, exist_ok=True)
    port, token = free_port(), "test-token-123"
    env = {**os.environ, "HOME": str(home), "SWIFTLAB_LAB_PORT": str(port), "SWIFTLAB_LAB_TOKEN": token,
           **extra_env}
    for var in ("JUPYTER_CONFIG_DIR", "JUPYTER_DATA_DIR", "JUPYTERLAB_SETTINGS_DIR", "IPYTHONDIR"):
        env.pop(var, None)
    with open(log, "w") as out:
        args = ["--no-browser"] + ([f"--ServerApp.root_dir={root}"] if root else [])
        proc = subprocess.Popen(["bash", str(ROOT / "bin" / "lab"), *args], env=env, stdout=out,
                                stderr=subprocess.STDOUT, start_new_session=True)
    url = f"http://127.0.0.1:{port}"
    try:
        for _ in range(240):
            try:
                urllib.request.urlopen(f"{url}/api/status?token={token}", timeout=2)
                break
            except (urllib.error.URLError, ConnectionError):
                if proc.poll() is not None:
                    break
                time.sleep(0.5)
        else:
            pytest.fail("the lab did not start:\n" + log.read_text()[-3000:])
        if proc.poll() is not None:
            pytest.fail("the lab exited:\n" + log.read_text()[-3000:])
        yield {"url": url, "token": token, "home": home, "log": log, "proc": proc}
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, 15)
            try:
                proc.wait(30)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, 9)
