"""Tiny randomly initialised models, one per supported family, built from configs in memory.

Small enough that a test decodes in milliseconds, deep enough (6 layers) that skip sets have
middle layers to choose from. Sliding-window families get a window shorter than the test
sequences, so that code path is exercised too.
"""

from __future__ import annotations

import torch
import transformers

COMMON = dict(vocab_size=96, hidden_size=32, intermediate_size=64, num_hidden_layers=6,
              num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=256,
              tie_word_embeddings=False, bos_token_id=1, eos_token_id=2, pad_token_id=0)

CONFIGS = {
    "llama": ("LlamaConfig", {}),
    "mistral": ("MistralConfig", dict(sliding_window=None)),
    "qwen2": ("Qwen2Config", {}),
    "qwen3": ("Qwen3Config", dict(head_dim=8)),
    "gemma": ("GemmaConfig", dict(head_dim=8)),
    "gemma2": ("Gemma2Config", dict(head_dim=8, sliding_window=12, query_pre_attn_scalar=8)),
    "gemma3_text": ("Gemma3TextConfig", dict(head_dim=8, sliding_window=12, query_pre_attn_scalar=8,
                                            sliding_window_pattern=3)),
    "phi3": ("Phi3Config", dict(pad_token_id=0)),
    "phi": ("PhiConfig", dict(num_key_value_heads=4)),
    "olmo": ("OlmoConfig", {}),
    "olmo2": ("Olmo2Config", {}),
    "granite": ("GraniteConfig", {}),
    "stablelm": ("StableLmConfig", dict(num_key_value_heads=4)),
    "starcoder2": ("Starcoder2Config", dict(sliding_window=None)),
    "gpt2": ("GPT2Config", dict(tie_word_embeddings=False, n_embd=32, n_layer=6, n_head=4, n_positions=256, vocab_size=96,
                                bos_token_id=1, eos_token_id=2)),
    "gpt_neox": ("GPTNeoXConfig", dict(use_parallel_residual=True)),
    "opt": ("OPTConfig", dict(ffn_dim=64, word_embed_proj_dim=32, enable_bias=True)),
}


def make_config(family: str):
    class_name, extra = CONFIGS[family]
    cls = getattr(transformers, class_name)
    kwargs = {} if family == "gpt2" else dict(COMMON)
    kwargs.update(extra)
    return cls(**kwargs)


def tiny_model(family: str, seed: int = 0, **overrides):
    from transformers import AutoModelForCausalLM

    torch.manual_seed(seed)
    config = make_config(family)
    for key, value in overrides.items():
        setattr(config, key, value)
    model = AutoModelForCausalLM.from_config(config, dtype=torch.float32)
    # Random init gives near-uniform logits; sharpen them so greedy tokens are well separated
    # (identity tests then test the algorithm, not float ties) and drafts are sometimes right.
    with torch.no_grad():
        model.get_output_embeddings().weight.mul_(8.0)
    return model.eval()
