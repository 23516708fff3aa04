"""Prompt-lookup drafts: if the last few tokens occurred earlier, propose what followed them there.

Summaries copy names and numbers from their article, code repeats identifiers, lists repeat
items: there the best draft costs no model pass at all (Saxena's prompt lookup decoding, in
transformers as `prompt_lookup_num_tokens`). SWIFT drafts with the skipping model wherever no such
match exists, so each draws its tokens where it is strong. Verification is unchanged, so the
output is still exactly the full model's.
"""

from __future__ import annotations

NGRAM_SIZES = (3, 2)  # longest match first; a single repeated token is too weak a cue to bet a pass on
LOOKUP_TOKENS = 15  # the most a lookup draft offers where one is wanted (bench's swift+lookup, the default plan):
# 3 or 7 after a miss, growing while accepted whole (drafters.LookupDrafter)


def lookup_continuation(tokens: list[int], max_tokens: int, ngram_sizes=NGRAM_SIZES) -> list[int]:
    """Up to `max_tokens` tokens that followed the first earlier occurrence of the last n-gram.

    The first, as transformers does: it is usually the source being copied (the article, the
    function's signature), where the most recent one is often a partial copy made a moment ago. On
    code the first occurrence gave 2.6 tokens per pass, the most recent 2.0."""
    if max_tokens < 1:
        return []
    for size in ngram_sizes:
        if len(tokens) <= size:
            continue
        tail = tokens[-size:]
        last = tail[-1]
        for start in range(len(tokens) - size):  # the tail itself (start = len - size) excluded
            if tokens[start + size - 1] == last and tokens[start:start + size] == tail:
                return tokens[start + size:start + size + max_tokens]
    return []
