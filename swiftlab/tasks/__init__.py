"""Tasks: seeded generators shaped like the paper's analysis tasks, and loaders for the real datasets."""

from .base import (Example, SPLITS, TaskSource, content_id, get_examples, get_task, register_task, split_of,
                   task_names, task_source)

__all__ = ["Example", "SPLITS", "TaskSource", "task_source", "content_id", "get_examples", "get_task", "register_task", "split_of", "task_names"]
