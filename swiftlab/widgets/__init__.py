"""Jupyter widgets: thin views over the engine, its records and the figure builders.

Every widget takes a model and tokenizer (or a ModelPicker) and calls the same functions the CLI
does; none holds its own copy of the decoding or search logic.
"""

import ipywidgets as _w

from .compare import TaskSparsityComparison
from .drafttree import DraftTreeView
from .editor import SkipSetEditor
from .explorer import SkipRatioExplorer
from .kvcache import KVCacheView
from .logitlens import LogitLens
from .monitor import OptimizationMonitor
from .picker import ModelPicker
from .race import Race
from .rejection import RejectionSampling
from .speedup import SpeedupCalculator
from .stepper import TokenStepper

__all__ = ["DraftTreeView", "KVCacheView", "LogitLens", "ModelPicker", "OptimizationMonitor", "Race",
           "RejectionSampling", "SkipRatioExplorer", "SkipSetEditor", "SpeedupCalculator", "TaskSparsityComparison",
           "TokenStepper", "with_model_picker"]


def with_model_picker(make, name: str = "lab", load: bool = True, **options) -> _w.VBox:
    """A model picker above a widget; picking another model rebuilds the widget on it.

    `make` is a widget class (or any callable) taking (model, tokenizer, **options)."""
    picker = ModelPicker(name)
    area = _w.VBox()
    box = _w.VBox([picker, area])
    picker.on_load(lambda model, tokenizer: setattr(area, "children", [make(model, tokenizer, **options)]))
    box.picker, box.area = picker, area
    if load:
        picker.load()
    return box
