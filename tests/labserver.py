"""Start the README's main command (bin/lab) for a test, and stop it afterwards."""

import os
import re
import socket
import subprocess
import time
from contextlib import contextmanager
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import pytest

ROOT = Path(__file__).resolve().parents[1]
ANNOUNCE = re.compile(r"^swiftlab lab: open (\S+)", re.MULTILINE)  # the one line bin/lab prints for the user


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def lab_env(home: Path, **extra_env) -> dict:
    """The environment of a user with an empty home folder (so a test sees anything written there)."""
    env = {**os.environ, "HOME": str(home), **extra_env}
    for var in ("JUPYTER_CONFIG_DIR", "JUPYTER_DATA_DIR", "JUPYTER_RUNTIME_DIR", "JUPYTERLAB_SETTINGS_DIR",
                "JUPYTERLAB_WORKSPACES_DIR", "IPYTHONDIR"):
        env.pop(var, None)
    return env


def printed_url(stdout: Path) -> str | None:
    found = ANNOUNCE.search(stdout.read_text())
    return found.group(1) if found else None


@contextmanager
def running_lab(workdir: Path, *args: str, port: int | None = None, **extra_env):
    """bin/lab with a throwaway HOME and a free port, as a user starts it; yields once it has printed its URL.

    `url` is that line's URL exactly (token included), `base` the server's address, `token` its token,
    `stdout`/`log` the files holding bin/lab's standard output and its standard error (Jupyter's log).
    Extra keyword arguments are environment variables for the server and so for its kernels.
    """
    home = workdir / "home"
    home.mkdir(parents=True, exist_ok=True)
    stdout, log = workdir / "lab.out", workdir / "lab.log"
    env = lab_env(home, SWIFTLAB_LAB_PORT=str(port or free_port()), **extra_env)
    with open(stdout, "w") as out, open(log, "w") as err:
        proc = subprocess.Popen(["bash", str(ROOT / "bin" / "lab"), "--no-browser", *args], env=env,
                                stdout=out, stderr=err, start_new_session=True)
    try:
        deadline = time.monotonic() + 300  # a first start on a busy 2-core machine
        while (url := printed_url(stdout)) is None:
            if proc.poll() is not None or time.monotonic() > deadline:
                pytest.fail("the lab did not print its URL:\n" + stdout.read_text() + log.read_text()[-3000:])
            time.sleep(0.5)
        parts = urlsplit(url)
        yield {"url": url, "base": f"{parts.scheme}://{parts.netloc}", "token": parse_qs(parts.query)["token"][0],
               "home": home, "stdout": stdout, "log": log, "proc": proc, "env": env}
    finally:
        stop(proc)


def stop(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        os.killpg(proc.pid, 15)
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, 9)
            proc.wait(10)
