"""SWIFT's optimization objective: how often the skip-mode model agrees with the full model.

Take the last W tokens the full model generated. Run the skip-mode model once over them,
teacher-forced, on top of the cached keys and values of everything before them; matchness is the
share of positions where its argmax equals the token the full model actually produced next.
No new tokens are generated, so scoring costs one forward pass, and several candidate skip sets
can share that pass as rows of one batch.
"""

from __future__ import annotations

import torch
from torch import nn

from ..models.adapters import input_device, last_logits_only
from .cache import SkipAwareCache
from .skipping import skipping_rows
from .skipset import SkipSet


@torch.inference_mode()
def matchness_scores(model: nn.Module, cache: SkipAwareCache, tokens: list[int], window: int,
                     skip_sets: list[SkipSet], min_confidence: float | None = None) -> list[float]:
    """Scores for `skip_sets` over the last `window` positions of `tokens`.

    `tokens` is the whole sequence so far, prompt included; its last token may or may not be in
    `cache` yet (the pending token of a decoding run is not). Positions before the window must be
    in the cache. The cache itself is not modified.

    With `min_confidence` a position counts only where the skip-mode model is also that sure of its
    guess (top-1 probability): drafting stops at the first guess it is unsure of (SwiftParams.epsilon),
    so a right but unsure guess ends the draft as a wrong one does. Plain matchness overrates such sets:
    on the lab model's code task a set of matchness 1.00 drafted 1.1 tokens a step and ran at 1.00x.
    """
    logits = window_logits(model, cache, tokens, window, skip_sets)
    targets = torch.tensor(tokens[-window:], device=logits.device)
    right = logits.argmax(-1) == targets
    if min_confidence is not None:
        right &= logits.float().softmax(-1).amax(-1) >= min_confidence
    return right.float().mean(-1).tolist()


@torch.inference_mode()
def window_logits(model: nn.Module, cache: SkipAwareCache, tokens: list[int], window: int,
                  skip_sets: list[SkipSet], **forward_kwargs):
    """Logits [len(skip_sets), window, vocab]: row b is the model with skip_sets[b] switched off,
    teacher-forced over the window (positions n-1-window .. n-2 of `tokens`). With
    forward_kwargs (e.g. output_hidden_states=True) the whole model output is returned."""
    n = len(tokens)
    start = n - 1 - window  # window positions start..n-2 are fed; each predicts its next token
    if start < 0:
        raise ValueError(f"need more than {window} tokens for a window of {window}, have {n}")
    device = input_device(model)
    batch = len(skip_sets)
    view = cache.prefix_view(start, batch)
    if view is None:  # a sliding window dropped the prefix: recompute it with the full model
        view = SkipAwareCache(model.config, rollback=False)
        if start:
            positions = torch.arange(start, device=device).unsqueeze(0)
            model(input_ids=torch.tensor([tokens[:start]], device=device), position_ids=positions,
                  cache=view, use_cache=True, **last_logits_only(model))
        view.batch_repeat_interleave(batch)
    ids = torch.tensor([tokens[start:n - 1]], device=device).expand(batch, -1)
    positions = torch.arange(start, n - 1, device=device).unsqueeze(0).expand(batch, -1)
    with skipping_rows(model, skip_sets):
        out = model(input_ids=ids, position_ids=positions, cache=view, use_cache=True, **forward_kwargs)
    return out if forward_kwargs else out.logits
