# JupyterLab server settings for the swiftlab lab (read because bin/lab sets JUPYTER_CONFIG_DIR here).
# Local only: bound to 127.0.0.1, token authentication (bin/lab passes a fresh random token).
from pathlib import Path

root = Path(__file__).resolve().parent.parent
c = get_config()  # noqa: F821 (provided by Jupyter)
c.ServerApp.ip = "127.0.0.1"
c.ServerApp.root_dir = str(root / "notebooks")
c.ServerApp.allow_remote_access = False
c.ServerApp.open_browser = True
c.LabApp.default_url = "/lab/tree/01-speculative-decoding.ipynb"
c.LabApp.news_url = None  # no calls home
