"""Tasks: seeded generators shaped like the paper's analysis tasks, and loaders for the real datasets."""

from .base import SPLITS, Example, content_id, split_of
from .catalog import TaskSource, get_examples, get_task, register_task, task_names, task_source

__all__ = ["Example", "SPLITS", "TaskSource", "task_source", "content_id", "get_examples", "get_task", "register_task", "split_of", "task_names"]
