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


class SkipAwareCache(DynamicCache):
    """transformers' DynamicCache for one SWIFT run, whose layers may hold different lengths while a skip set
    drafts (see the module docstring): lengths and mask sizes come from the longest layer of a kind, and
    `crop_to`, `keep` and `prefix_view` roll back, keep and share positions by absolute length."""

    def __init__(self, config, rollback: bool = True):
        """An empty cache for a model of this config. With `rollback`, sliding-window layers keep the
        positions that fall out of their window until the next `crop_to`, so a rejected draft can be undone;
        a run that never rolls back (plain steps only) passes False."""
        super().__init__(config=config)
        self.config_for_view = config
        if rollback:
            # Sliding-window layers forget tokens that fall out of the window; to roll back
            # rejected drafts they must keep them until the next crop_to.
            self.activate_past_recording()

    def _true_length_layer(self, layer_idx: int) -> int:
        if layer_idx >= len(self.layers):
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
        is moved next to it."""
        chain_part = [i for i in path if i < chain_length]
        sibling = [i for i in path if i >= chain_length]
        for layer in self.layers:
            if sibling and layer.get_seq_length() > length + sibling[0]:
                at = length + sibling[0]
                k, v = layer.keys[..., at:at + 1, :], layer.values[..., at:at + 1, :]
                end = length + len(chain_part)
                layer.keys = torch.cat([layer.keys[..., :end, :], k], dim=-2)
                layer.values = torch.cat([layer.values[..., :end, :], v], dim=-2)
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
            fresh = type(layer)(**({"sliding_window": layer.sliding_window} if layer.is_sliding else {}))
            fresh.lazy_initialization(layer.keys, layer.values)
            fresh.keys = layer.keys[:, :, lo - first_held:length - first_held].expand(batch, -1, -1, -1)
            fresh.values = layer.values[:, :, lo - first_held:length - first_held].expand(batch, -1, -1, -1)
            if layer.is_sliding:
                fresh.cumulative_length = length
            fresh.update = _attend_without_storing(fresh.keys, fresh.values)
            view.layers.append(fresh)
        return view


def _attend_without_storing(keys: torch.Tensor, values: torch.Tensor):
    """An `update` for a read-only layer: the keys and values to attend to, the layer unchanged.
    It holds the tensors, not the layer: a layer holding a function that holds the layer is a
    reference cycle, which only the cyclic garbage collector frees, whenever it next runs; until then
    every scoring pass's view kept that step's whole KV cache alive (code stream, search phase:
    +100 MB of resident memory)."""
    def update(key_states: torch.Tensor, value_states: torch.Tensor, *args, **kwargs):
        return torch.cat([keys, key_states], dim=-2), torch.cat([values, value_states], dim=-2)
    return update
