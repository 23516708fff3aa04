"""Jupyter widgets: thin views over the engine, its records and the figure builders.

Every widget takes a model and tokenizer (or a ModelPicker) and calls the same functions the CLI
does; none holds its own copy of the decoding or search logic.
"""

from .editor import SkipSetEditor
from .monitor import OptimizationMonitor
from .picker import ModelPicker
from .stepper import TokenStepper

__all__ = ["ModelPicker", "OptimizationMonitor", "SkipSetEditor", "TokenStepper"]
