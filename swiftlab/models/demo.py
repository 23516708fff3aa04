"""A stand-in model for the demo until the bundled lab model ships: seeded, random, real code paths."""

from __future__ import annotations

import torch


def byte_tokenizer():
    """A byte-level tokenizer (ids 0, 1 = <s>, </s>; 2..257 = bytes), built without any download."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    vocab = {"<s>": 0, "</s>": 1}
    vocab.update({ch: i + 2 for i, ch in enumerate(sorted(pre_tokenizers.ByteLevel.alphabet()))})
    tok = Tokenizer(models.BPE(vocab=vocab, merges=[]))
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    tok.add_special_tokens(["<s>", "</s>"])
    return PreTrainedTokenizerFast(tokenizer_object=tok, bos_token="<s>", eos_token="</s>")


def random_demo_model(num_layers: int = 12, seed: int = 0):
    """A 12-layer Llama with a byte-level tokenizer built in memory (no download)."""
    from transformers import LlamaConfig, LlamaForCausalLM

    tokenizer = byte_tokenizer()
    torch.manual_seed(seed)
    config = LlamaConfig(vocab_size=258, hidden_size=128, intermediate_size=344, num_hidden_layers=num_layers,
                         num_attention_heads=4, num_key_value_heads=4, max_position_embeddings=1024,
                         bos_token_id=None, eos_token_id=None)
    model = LlamaForCausalLM(config).eval()
    with torch.no_grad():  # random logits are near-uniform; sharpen them so drafts carry signal
        model.lm_head.weight.mul_(20.0)
    return model, tokenizer
