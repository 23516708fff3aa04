"""`swiftlab` / `python -m swiftlab`: the command line over the same engine the notebooks use."""

from __future__ import annotations

import argparse
import json
import os
import sys

from .errors import SwiftlabError

DEMO_PROMPTS = [
    "Once upon a time, there was a little girl named Lily.",
    "The cat sat on the mat and looked at the",
    "Tom and his dog went to the park. They",
    "One day, a big bird flew over the house and",
]


def _add_model_args(p: argparse.ArgumentParser, required: bool = True) -> None:
    p.add_argument("--model", required=required, help="hub id or local folder")
    p.add_argument("--dtype", default=None, help="float32 | float16 | bfloat16 | auto")
    p.add_argument("--device", default=None, help="cpu, cuda, cuda:1 ... (default: where it loads)")
    p.add_argument("--trust-remote-code", action="store_true",
                   help="allow the model's own Python code to run (off by default)")


def _add_skip_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--skip-ratio", type=float, default=None,
                   help="uniform skip set at this ratio of the 2(L-2) middle sub-layers (default 0.45)")
    p.add_argument("--skip-set", default=None, metavar="FILE[#KEY]",
                   help="skip set JSON (swiftlab's, or the reference skip_layers.json with #KEY)")
    p.add_argument("--epsilon", type=float, default=0.8, help="stop drafting below this confidence")
    p.add_argument("--max-draft", type=int, default=25, help="draft-length cap")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="swiftlab", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)

    g = sub.add_parser("generate", help="decode one prompt with SWIFT or autoregressively")
    _add_model_args(g)
    g.add_argument("--prompt", required=True)
    g.add_argument("--method", choices=("ar", "swift"), default="swift")
    _add_skip_args(g)
    g.add_argument("--max-new-tokens", type=int, default=128)
    g.add_argument("--temperature", type=float, default=0.0, help="0 = greedy")
    g.add_argument("--top-p", type=float, default=1.0)
    g.add_argument("--top-k", type=int, default=0)
    g.add_argument("--seed", type=int, default=None)
    g.add_argument("--json", action="store_true", help="print one JSON object")

    d = sub.add_parser("demo", help="SWIFT vs autoregressive on a few prompts: same tokens, measured ratio")
    _add_model_args(d, required=False)
    _add_skip_args(d)
    d.add_argument("--max-new-tokens", type=int, default=96)
    d.add_argument("--repeats", type=int, default=3)
    return parser


def _skip_set(args, model):
    from .adapters import num_layers
    from .skipset import SkipSet

    if args.skip_set and args.skip_ratio is not None:
        raise SwiftlabError("give --skip-ratio or --skip-set, not both")
    n = num_layers(model)
    if args.skip_set:
        path, _, key = args.skip_set.partition("#")
        return SkipSet.load(path, n, key or None)
    return SkipSet.uniform(n, 0.45 if args.skip_ratio is None else args.skip_ratio)


def _load(args):
    from .loading import load_model

    return load_model(args.model, dtype=args.dtype, device=args.device, trust_remote_code=args.trust_remote_code)


def cmd_generate(args) -> int:
    from .api import generate
    from .decoding import SwiftParams

    model, tokenizer = _load(args)
    swift = SwiftParams(args.epsilon, args.max_draft)
    skip_set = _skip_set(args, model) if args.method == "swift" else None
    result = generate(model, tokenizer, args.prompt, method=args.method, skip_set=skip_set,
                      max_new_tokens=args.max_new_tokens, temperature=args.temperature, top_p=args.top_p,
                      top_k=args.top_k, seed=args.seed, swift=swift)
    if args.json:
        d = result.to_dict()
        d["skip_set"] = d["skip_set"] or {"attention": [], "mlp": []}
        print(json.dumps(d))
    else:
        print(args.prompt + result.text)
        print(f"[{args.method}] {result.new_tokens} tokens in {result.wall_s:.2f} s "
              f"({result.tokens_per_s:.1f} tok/s), {result.steps} full-model passes, "
              f"{result.mean_accepted_tokens:.2f} tokens/pass, acceptance {result.acceptance_rate:.0%}",
              file=sys.stderr)
    return 0


def _demo_model(args):
    if args.model:
        return _load(args)
    from .demo import random_demo_model

    print("No --model given: using a small randomly initialised Llama (its text is gibberish, "
          "but the equality check and the speed ratio are real).", file=sys.stderr)
    return random_demo_model()


def cmd_demo(args) -> int:
    from .api import decode_continuation, encode_prompt
    from .bench import compare
    from .decoding import SwiftParams

    model, tokenizer = _demo_model(args)
    skip_set = _skip_set(args, model)
    prompts = [encode_prompt(tokenizer, p) for p in DEMO_PROMPTS]
    comparison = compare(model, prompts, skip_set, max_new_tokens=args.max_new_tokens,
                         repeats=args.repeats, swift=SwiftParams(args.epsilon, args.max_draft))
    s = comparison.summary()
    print(f"model: {args.model or 'random demo Llama'}   skip set: {skip_set}")
    print(f"autoregressive  {s['ar_tokens_per_s']:8.1f} tok/s (median of {s['runs']} runs)")
    print(f"SWIFT           {s['swift_tokens_per_s']:8.1f} tok/s   "
          f"{s['mean_accepted_tokens']:.2f} tokens/pass, acceptance {s['acceptance_rate']:.0%}")
    print(f"speedup         {s['speedup']:8.2f}x   output identical to autoregressive: {s['identical']}")
    first = comparison.swift[0]
    print("\nsample (SWIFT):", DEMO_PROMPTS[0] + decode_continuation(tokenizer, first.prompt_ids, first.token_ids))
    return 0 if s["identical"] else 1


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    try:
        from transformers.utils import logging as hf_logging

        hf_logging.set_verbosity_error()
        hf_logging.disable_progress_bar()
        return {"generate": cmd_generate, "demo": cmd_demo}[args.command](args)
    except SwiftlabError as e:
        print(f"swiftlab: error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("swiftlab: interrupted", file=sys.stderr)
        return 130
    except Exception as e:  # anything unforeseen: one line, the traceback only on request
        if os.environ.get("SWIFTLAB_DEBUG"):
            raise
        print(f"swiftlab: internal error: {type(e).__name__}: {e} (set SWIFTLAB_DEBUG=1 for the traceback)",
              file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
