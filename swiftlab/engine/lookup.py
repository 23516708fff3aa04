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
# Pure prompt lookup, transformers' rule (`prompt_lookup_num_tokens=10`): no skip drafts, 2- then 1-gram matches,
# 10 tokens offered every time. A stream takes it where it is measured faster (search/lookupchoice.py): on the lab
# model's summaries it runs 2.77x over AR where the skip drafter's gate and short offers run 2.29x
# (docs/measurements.md, "What the gap is made of"); everywhere else it is 0.4-0.7 of them.
PURE_NGRAMS = (2, 1)
PURE_TOKENS = 10


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


def replay_pure_lookup(prompt: list[int], tokens: list[int], max_tokens: int = PURE_TOKENS,
                       ngram_sizes=PURE_NGRAMS, eos=()) -> list[int]:
    """The verify widths (pending token included: 1 is a plain step) of the passes that pure prompt lookup
    would take to emit `tokens` after `prompt`, every continuation on offer verified. Greedy output is the
    full model's whatever drafted it, so each offer's accepted prefix is known from `tokens` alone: what a
    stream decoded with skip drafts also says what pure lookup would have cost on it. The prefill's token
    (tokens[0]) takes no step; offers stop after an end-of-text token and leave the last token to the
    pass, as LookupDrafter's do."""
    widths, context, done = [], list(prompt) + list(tokens[:1]), 1
    while done < len(tokens):
        offer = lookup_continuation(context, min(max_tokens, len(tokens) - done - 1), ngram_sizes)
        end = next((i + 1 for i, t in enumerate(offer) if t in eos), len(offer))
        offer = offer[:end]
        accepted = 0
        while accepted < len(offer) and offer[accepted] == tokens[done + accepted]:
            accepted += 1
        widths.append(len(offer) + 1)
        context += tokens[done:done + accepted + 1]
        done += accepted + 1
    return widths
