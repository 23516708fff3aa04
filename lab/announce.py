"""Print the lab's whole URL, token included, once the server answers (bin/lab starts this beside Jupyter).

Jupyter prints a token it was given hidden (`?token=...`), so a user could not log in from its banner. The server
writes its connection file (`jpserver-<pid>.json`: URL, port, token) into JUPYTER_RUNTIME_DIR when it listens;
reading the port from there rather than from our arguments gives the right URL when a busy port made Jupyter
move on to the next one. The token is read from the file JUPYTER_TOKEN_FILE names (bin/lab writes it, readable by
this user only), never from the command line, where every local user could read it in `ps`.
Usage: python announce.py SERVER_PID
"""

import json
import os
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        pass
    return True


def server_info(pid: int) -> dict | None:
    """The server's connection file (url, port, ...), once it has written one."""
    path = Path(os.environ["JUPYTER_RUNTIME_DIR"]) / f"jpserver-{pid}.json"
    try:
        info = json.loads(path.read_text())
        return info if "url" in info and "port" in info else None
    except (OSError, ValueError):
        return None  # not written yet, or half written


def answers(url: str, token: str) -> bool:
    try:
        urllib.request.urlopen(f"{url}api/status?token={token}", timeout=2)
        return True
    except (urllib.error.URLError, ConnectionError, TimeoutError):
        return False


def remove_ended_tokens(runtime: Path) -> None:
    """Token files of labs that have ended (bin/lab names them by its process id)."""
    for path in runtime.glob("swiftlab-token-*"):
        suffix = path.name.rsplit("-", 1)[-1]
        if suffix.isdigit() and not alive(int(suffix)):
            path.unlink(missing_ok=True)


def main(pid: int) -> None:
    token = Path(os.environ["JUPYTER_TOKEN_FILE"]).read_text().strip()
    remove_ended_tokens(Path(os.environ["JUPYTER_RUNTIME_DIR"]))
    while alive(pid):
        info = server_info(pid)
        if info and answers(info["url"], token):
            print(f"swiftlab lab: open {info['url']}lab?token={token}  (Ctrl-C twice to stop, "
                  f"or from another shell: bash bin/lab stop {info['port']})", flush=True)
            return
        time.sleep(0.5)


if __name__ == "__main__":
    main(int(sys.argv[1]))
