"""A model picker: the bundled lab model by default, the other models swiftlab knows by name (smollm2-135m),
any hub id or local folder, loaded lazily."""

from __future__ import annotations

import ipywidgets as w

from ..support.errors import SwiftlabError
from ..models.loading import load_model
from ..models.registry import KNOWN
from .common import ErrorLine


class ModelPicker(w.HBox):
    """A model name box and a load button: `load` loads the named model and hands (model, tokenizer) to every
    `on_load` callback; `model` and `tokenizer` hold the one loaded last."""
    def __init__(self, name: str = "lab", on_load=None):
        self.errors = ErrorLine()  # a failed click or slider shows here (common.py)
        self.name = w.Combobox(value=name, options=list(KNOWN), placeholder="hub id or local folder",
                               description="model", layout=w.Layout(width="360px"))
        self.button = w.Button(description="load", icon="download")
        self.status = w.HTML()
        super().__init__([self.name, self.button, self.status, self.errors])
        self.model = self.tokenizer = None
        self._callbacks = [on_load] if on_load else []
        self.button.on_click(self.errors.guard(lambda _: self.load()))

    def on_load(self, callback) -> None:
        """Also call `callback(model, tokenizer)` after every successful load from now on."""
        self._callbacks.append(callback)

    def load(self):
        """Load the named model; on failure show the one-line reason and keep the previous model."""
        self.button.disabled = True
        self.status.value = "loading…"
        try:
            model, tokenizer = load_model(self.name.value)
        except SwiftlabError as e:
            self.status.value = f"<span style='color:#b00'>{e}</span>"
            return None
        finally:
            self.button.disabled = False
        self.model, self.tokenizer = model, tokenizer
        self.status.value = f"loaded {self.name.value} ({model.config.num_hidden_layers} layers)"
        for callback in self._callbacks:
            callback(model, tokenizer)
        return model, tokenizer
