"""The KV cache shared by drafting and verification.

transformers' DynamicCache grows every layer by the tokens each forward pass feeds it. A skipped
attention layer writes nothing, so during drafting its cache is shorter than the others. Two
consequences, both handled here:
- rolling back rejected draft tokens must cut every layer to an absolute length (not "drop k"),
  because the layers no longer agree on how many entries they hold;
- transformers sizes the attention mask from one layer's cache (the first full-attention layer,
  or the first sliding one). If that layer is skipped (Gemma 2's layer 1 is its first global
  layer) its stale length would size the mask wrong for every other layer. The longest layer of
  the same kind always has the true length, because only skipped layers fall behind.
"""

from __future__ import annotations

import torch
from transformers import DynamicCache
from transformers.cache_utils import DynamicLayer


class SkipAwareCache(DynamicCache):
    """transformers' DynamicCache for one SWIFT run, whose layers may hold different lengths while a skip set
    drafts (see the module docstring): lengths and mask sizes come from the longest layer of a kind, and
    `crop_to`, `keep` and `prefix_view` roll back, keep and share positions by absolute length."""

    def __init__(self, config, rollback: bool = True, capacity: int | None = None):
        """An empty cache for a model of this config. With `rollback`, sliding-window layers keep the
        positions that fall out of their window until the next `crop_to`, so a rejected draft can be undone;
        a run that never rolls back (plain steps only) passes False. With a `capacity` (positions), the
        full-attention layers are PreallocatedLayers of that many positions."""
        super().__init__(config=config)
        self.config_for_view = config
        if capacity is not None:
            self.layers = [layer if layer.is_sliding or type(layer) is not DynamicLayer else PreallocatedLayer(capacity)
                           for layer in self.layers]
        if rollback:
            # Sliding-window layers forget tokens that fall out of the window; to roll back
            # rejected drafts they must keep them until the next crop_to.
            self.activate_past_recording()

    def _true_length_layer(self, layer_idx: int) -> int:
        # a compiled pass (compiled.py) is a full-model pass, and every full-model pass starts with all layers
        # at the same length (only drafts leave skipped layers behind): this is then the layer itself
        if layer_idx >= len(self.layers) or torch.compiler.is_compiling():
            return layer_idx
        kind = self.is_sliding[layer_idx]
        same_kind = [i for i in range(len(self.layers)) if self.is_sliding[i] == kind]
        return max(same_kind, key=lambda i: self.layers[i].get_seq_length())

    def get_mask_sizes(self, query_length: int, layer_idx: int):
        return super().get_mask_sizes(query_length, self._true_length_layer(layer_idx))

    def get_query_offset(self, layer_idx: int = 0):
        return super().get_query_offset(self._true_length_layer(layer_idx))

    def get_seq_length(self, layer_idx: int = 0) -> int:
        return super().get_seq_length(self._true_length_layer(layer_idx))

    def reserve(self, positions: int) -> None:
        """Make the preallocated layers' buffers longer than `positions` now (moving those that are not), so that
        a pass up to there writes in place. A compiled pass asks first: a pass that moves, or that fills a buffer
        exactly, is another graph to compile (a minute or more), near the end of every run. It also checks what
        a compiled pass assumes (_true_length_layer): the layers of a kind all hold the same length."""
        lengths = (set(), set())  # the lengths held by full-attention and by sliding-window layers
        for layer in self.layers:
            lengths[bool(layer.is_sliding)].add(layer.get_seq_length())
            if isinstance(layer, PreallocatedLayer) and layer.key_buffer is not None and layer.key_buffer.shape[2] <= positions:
                layer.move(positions + 1)
        if len(lengths[0]) > 1 or len(lengths[1]) > 1:
            raise RuntimeError(f"a compiled full-model pass over layers holding different lengths {sorted({*lengths[0], *lengths[1]})}: "
                               "a skipped layer's positions must be filled (verified) before it")

    def draft_slot(self, position: int) -> tuple[list[torch.Tensor], list[torch.Tensor]] | None:
        """Every layer made to hold one more position, `position`, for a compiled draft pass to write
        (compileddraft.py): per layer the keys and values [1, kv heads, position + 1, head size] it attends to,
        whose last position the pass writes, a skipped layer's too. None, and nothing changed, unless every
        layer is a preallocated one holding exactly `position` positions."""
        layers = self.layers
        if not all(isinstance(layer, PreallocatedLayer) and layer.key_buffer is not None and layer.length == position
                   for layer in layers):
            return None
        for layer in layers:
            if layer.key_buffer.shape[2] <= position + 1:  # (a view filling its buffer exactly is another graph)
                layer.move(position + 2)
            layer.keys = layer.key_buffer[:, :, :position + 1]
            layer.values = layer.value_buffer[:, :, :position + 1]
            layer.length = position + 1
        return [layer.keys for layer in layers], [layer.values for layer in layers]

    def crop_to(self, length: int) -> None:
        """Keep the first `length` positions in every layer (layers already shorter are left alone)."""
        for layer in self.layers:
            extra = layer.get_seq_length() - length
            # crop(0) on a sliding layer trims it back to its window, which past recording postponed
            if extra > 0 or (extra == 0 and layer.is_sliding):
                layer.crop(-extra)

    def keep(self, length: int, path: list[int], chain_length: int) -> None:
        """After a tree verification: keep the first `length` positions, then the accepted nodes.

        `path` holds node indices (node i sits at position length + i); the accepted path is a
        prefix of the chain, which already sits in place, plus at most one sibling, whose entry
        is copied next to it, in place (it sits further on, so nothing kept is overwritten)."""
        chain_part = [i for i in path if i < chain_length]
        sibling = [i for i in path if i >= chain_length]
        for layer in self.layers:
            if sibling and layer.get_seq_length() > length + sibling[0]:
                at, end = length + sibling[0], length + len(chain_part)
                layer.keys[..., end, :] = layer.keys[..., at, :]
                layer.values[..., end, :] = layer.values[..., at, :]
        self.crop_to(length + len(path))

    def prefix_view(self, length: int, batch: int = 1) -> "SkipAwareCache | None":
        """A read-only cache holding the first `length` positions, repeated over `batch` rows, that
        shares this cache's storage (views, no copy). A pass on the view attends to those positions
        and its own, and keeps nothing: storing its keys would keep a copy of the whole prefix, per
        row, in every layer until the pass ends; this way one layer's copy lives at a time. The
        decoding in progress is untouched. None when a sliding-window layer has already dropped
        positions the view would need."""
        view = SkipAwareCache(self.config_for_view, rollback=False)
        view.layers = []
        for layer in self.layers:
            if not getattr(layer, "is_initialized", False) or layer.get_seq_length() < length:
                return None
            first_held = layer.get_seq_length() - layer.keys.shape[-2]  # > 0 once a window dropped some
            # a sliding layer attends to its last window-1 positions only, and the mask assumes so
            lo = max(0, length - layer.sliding_window + 1) if layer.is_sliding else 0
            if lo < first_held:
                return None  # positions the view needs are gone; the caller must recompute
            fresh = type(layer)(sliding_window=layer.sliding_window) if layer.is_sliding else DynamicLayer()
            fresh.lazy_initialization(layer.keys, layer.values)
            fresh.keys = layer.keys[:, :, lo - first_held:length - first_held].expand(batch, -1, -1, -1)
            fresh.values = layer.values[:, :, lo - first_held:length - first_held].expand(batch, -1, -1, -1)
            if layer.is_sliding:
                fresh.cumulative_length = length
            fresh.update = _attend_without_storing(fresh.keys, fresh.values)
            view.layers.append(fresh)
        return view


class PreallocatedLayer(DynamicLayer):
    """A full-attention cache layer whose keys and values live in buffers of `capacity` positions, allocated
    on the first pass: `update` writes the pass's positions in place and its keys and values are views of the
    buffers' first positions. The length held is an int attribute (get_seq_length reads it, crop sets it): a
    crop shortens the views, and the next pass overwrites what was cut. DynamicLayer's torch.cat
    instead copies the whole layer at every pass (and holds old and new copies while it does). A pass that
    would overrun the buffers, or one after its keys stopped being a view of them (transformers' batch and
    offload methods give it new tensors: see below), moves the layer to new buffers: the capacity is a size
    to start from, not a limit. Nothing here reads data pointers, so a compiled pass traces it whole."""

    def __init__(self, capacity: int):
        super().__init__()
        self.capacity = capacity
        self.key_buffer = self.value_buffer = None
        # the positions held, kept as a number: a compiled pass then reads the buffers and not `keys` too (two
        # inputs aliasing one storage, which inductor fails to compile with dynamic shapes)
        self.length = 0

    def get_seq_length(self) -> int:
        """The positions held."""
        return self.length

    def crop(self, tokens_to_remove: int) -> None:
        """Drop the last `-tokens_to_remove` positions (transformers' convention: a negative count)."""
        super().crop(tokens_to_remove)
        self.length = self.keys.shape[-2] if self.keys.numel() else 0

    def update(self, key_states: torch.Tensor, value_states: torch.Tensor, *args, **kwargs):
        """Write a pass's keys and values after the held positions; the keys and values to attend to (views)."""
        if not self.is_initialized:
            self.lazy_initialization(key_states, value_states)
        length = self.length
        end = length + key_states.shape[-2]
        if not self._holds(end, key_states):
            self.move(end, key_states, value_states)
        self.key_buffer[:, :, length:end] = key_states
        self.value_buffer[:, :, length:end] = value_states
        self.keys, self.values = self.key_buffer[:, :, :end], self.value_buffer[:, :, :end]
        self.length = end
        return self.keys, self.values

    def _holds(self, end: int, key_states: torch.Tensor) -> bool:
        buffer = self.key_buffer
        return (buffer is not None and end <= buffer.shape[2] and buffer.shape[:2] == key_states.shape[:2]
                and buffer.dtype == key_states.dtype)

    def move(self, end: int, key_states: torch.Tensor | None = None, value_states: torch.Tensor | None = None) -> None:
        """Move the held positions to new buffers with room for `end` (shaped like the states about to be
        written, or like the held ones)."""
        key_states = self.keys if key_states is None else key_states
        value_states = self.values if value_states is None else value_states
        # past the capacity: a sixteenth more room, so a run that outgrows it copies rarely and stays near its size
        size = max(self.capacity, end + end // 16)
        keys = key_states.new_empty((*key_states.shape[:2], size, key_states.shape[-1]))
        values = value_states.new_empty((*value_states.shape[:2], size, value_states.shape[-1]))
        if self.length:
            keys[:, :, :self.length], values[:, :, :self.length] = self.keys, self.values
        self.key_buffer, self.value_buffer = keys, values


def _releasing(method):
    """A DynamicLayer method that gives a layer new key tensors, made to let go of the buffers they no longer view."""
    def release_after(self, *args, **kwargs):
        method(self, *args, **kwargs)
        self.key_buffer = self.value_buffer = None
    return release_after


for _name in ("batch_repeat_interleave", "batch_select_indices", "reorder_cache", "offload", "prefetch"):
    setattr(PreallocatedLayer, _name, _releasing(getattr(DynamicLayer, _name)))


def _attend_without_storing(keys: torch.Tensor, values: torch.Tensor):
    """An `update` for a read-only layer: the keys and values to attend to, the layer unchanged.
    It holds the tensors, not the layer: a layer holding a function that holds the layer is a
    reference cycle, which only the cyclic garbage collector frees, whenever it next runs; until then
    every scoring pass's view kept that step's whole KV cache alive (code stream, search phase:
    +100 MB of resident memory)."""
    def update(key_states: torch.Tensor, value_states: torch.Tensor, *args, **kwargs):
        return torch.cat([keys, key_states], dim=-2), torch.cat([values, value_states], dim=-2)
    return update
