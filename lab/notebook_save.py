"""The lab's save hook (lab/jupyter_server_config.py installs it): notebooks are saved as their author wrote them.

The lab serves the repository's notebooks in place, so a save (autosave included) must not put a run's results
into tracked files: no outputs, execution counts, run timings or widget state. Then `git status` stays clean after
running them, and a reopened notebook cannot show "Error displaying widget: model not found" for the widgets of a
kernel that is gone. Edits to the cells themselves are saved as usual, so a change you make is a change git shows.
"""

import json
from pathlib import Path

from jupyter_server.services.contents.largefilemanager import AsyncLargeFileManager

# What running a cell adds to its metadata, as opposed to what a person wrote: JupyterLab's timings, the output's
# scroll state, trust.
RUN_CELL_METADATA = ("execution", "scrolled", "trusted")


def strip_run_state(model, path, contents_manager, **kwargs):
    """Jupyter's pre-save hook: edit the notebook about to be written, in place."""
    if model.get("type") != "notebook" or not isinstance(model.get("content"), dict):
        return
    notebook = model["content"]
    for cell in notebook.get("cells", []):
        if cell.get("cell_type") == "code":
            cell["outputs"], cell["execution_count"] = [], None
        for key in RUN_CELL_METADATA:
            cell.get("metadata", {}).pop(key, None)
    metadata = notebook.setdefault("metadata", {})
    metadata.pop("widgets", None)
    # language_info names the Python that ran the kernel, not the notebook: an existing file keeps its own
    saved = Path(contents_manager.root_dir) / path.strip("/")
    try:
        metadata["language_info"] = json.loads(saved.read_text())["metadata"]["language_info"]
    except (OSError, ValueError, KeyError):
        pass  # a new notebook: keep what the kernel reported


class LabContentsManager(AsyncLargeFileManager):
    """Jupyter's default contents manager with the hook registered (set through the `pre_save_hook` option
    instead, Jupyter warns that it overrides itself: it applies the config file twice)."""

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.register_pre_save_hook(strip_run_state)
