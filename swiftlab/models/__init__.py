"""Knowing and loading models: the adapter layer (the one place that knows model families), loading
from a hub id or folder, the models known by name and the GGUF conversion, and training and describing the
bundled lab model (whose weights sit in models/lab/)."""
