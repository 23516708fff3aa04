# JupyterLab server settings for the swiftlab lab (read because bin/lab sets JUPYTER_CONFIG_DIR here).
# Local only: bound to 127.0.0.1, token authentication (bin/lab passes a fresh random token).
import sys
from pathlib import Path

lab = Path(__file__).resolve().parent
if str(lab) not in sys.path:  # for notebook_save (Jupyter reads this file twice)
    sys.path.insert(0, str(lab))
c = get_config()  # noqa: F821 (provided by Jupyter)
c.ServerApp.ip = "127.0.0.1"
c.ServerApp.root_dir = str(lab.parent / "notebooks")
c.ServerApp.allow_remote_access = False
c.ServerApp.open_browser = True
c.LabApp.default_url = "/lab/tree/01-speculative-decoding.ipynb"
c.LabApp.news_url = None  # no calls home
# saving keeps the notebooks as committed (no outputs, counts or widget state): see notebook_save.py
c.ServerApp.contents_manager_class = "notebook_save.LabContentsManager"
