"""Task sparsity side by side: each task's optimized skip set, and the cross-task transfer matrix."""

from __future__ import annotations

import ipywidgets as w
import plotly.graph_objects as go

from ..analysis.figures import skip_sets_heatmap, transfer_matrix
from ..analysis.probes import TaskSparsityRecord
from .common import ErrorLine


class TaskSparsityComparison(w.VBox):
    """A view over a TaskSparsityRecord (run `swiftlab probe task-sparsity`, or probes.task_sparsity)."""

    def __init__(self, record: TaskSparsityRecord):
        self.errors = ErrorLine()  # a failed click or slider shows here (common.py)
        self.record = record
        self.tasks = w.SelectMultiple(options=record.tasks, value=tuple(record.tasks), description="tasks")
        self.sets_figure = go.FigureWidget(skip_sets_heatmap(record.sets()))
        self.transfer_figure = go.FigureWidget(self._transfer(record.tasks))
        super().__init__([self.tasks, self.sets_figure, self.transfer_figure, self.errors])
        self.tasks.observe(self.errors.guard(lambda _: self._update()), "value")

    def _transfer(self, tasks) -> go.Figure:
        return transfer_matrix(self.record.speedups(tasks), self.record.spread(tasks))

    def _update(self) -> None:
        chosen = list(self.tasks.value) or list(self.record.tasks)
        sets = {t: s for t, s in self.record.sets().items() if t in chosen}
        new_sets, new_transfer = skip_sets_heatmap(sets), self._transfer(chosen)
        with self.sets_figure.batch_update():
            self.sets_figure.data[0].z, self.sets_figure.data[0].y = new_sets.data[0].z, new_sets.data[0].y
        with self.transfer_figure.batch_update():
            t = self.transfer_figure.data[0]
            new = new_transfer.data[0]
            t.z, t.x, t.y, t.text, t.customdata = new.z, new.x, new.y, new.text, new.customdata
            t.zmin, t.zmax, t.colorbar = new.zmin, new.zmax, new.colorbar
