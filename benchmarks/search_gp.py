"""Benchmark: the search's hand-written Gaussian process against scikit-optimize's, side by side.

    .venv/bin/python benchmarks/search_gp.py            # lab model and SmolLM2-135M (20 min at load 6 on 2 cores)
    .venv/bin/python benchmarks/search_gp.py --quick    # lab model, tiny sizes (a smoke run; numbers mean nothing)

On a shared machine run it with OMP_NUM_THREADS=1: under contention torch's threads spin (at load 12 on
2 cores a lab-model pass took ~500 ms with 2 threads, ~75 ms with 1).

Four ways to make SkipSearch's Bayesian proposal (every β-th proposal; the random ones are the same code):

- today:      swiftlab.search.skipsearch as it is: GP with kernel exp(-hamming/l), l = dims/4, noise 1e-2, standardized
              targets, fitted to the bounded history (best half + latest half, <= 64 points), UCB (κ = 2.5) over
              a pool of <= 256 random and neighbouring sets at the searched count of ones.
- today-all:  today's GP fitted to every scored point (history unbounded), the data skopt's Optimizer
              keeps: skopt-pool against it is the library's cost and behaviour at equal data.
- skopt-pool: the same GP built from scikit-optimize: one `Optimizer` per search with a fixed kernel (skopt's
              RBF with length scale sqrt(l/2), which is exp(-hamming/l) on binary points; `optimizer=None`:
              no refits), alpha 1e-2, normalize_y, acq_func "LCB" (κ = 2.5, on the negated objective: UCB),
              told every scored point (fit=True only before a Bayesian proposal); its fitted model and
              skopt's acquisition then rank OUR pool. The most faithful use: same kernel, candidates and
              constraint (the pool only holds sets with a searched count of ones); the one difference is
              skopt's data, every point rather than the bounded history (an Optimizer built afresh for each
              ask costs ~150 ms of scipy set-up alone). It must propose today-all's sets, and today's while
              all points fit in today's history (<= 32): the table counts them.
- skopt-ask:  scikit-optimize as the reference used its BO library: one Optimizer for the whole search,
              told every scored point, Real(0, 1) coordinates, `ask()` with acq_optimizer "sampling" over
              n_points = 256 uniform points, the suggestion projected onto the constraint by its top-k
              coordinates (SWIFT's reference does this with bayes_opt). skopt's `space_constraint` cannot
              do it: at low skip ratios almost no uniform binary point has the right count of ones.

Measures (a) ms per ask+tell (observe one point + make one Bayesian proposal) with 16, 64 and 200
points observed, the arms alternating, median and interquartile range over repeats; and (b) the
best matchness after N search steps on real matchness scores (swiftlab.engine.matchness, as
decoding._optimize scores candidates: the last `window` tokens of the full model's greedy
continuation of a prompt, on its cache), same seeds, same scoring (memoized: a set scores the same
in every arm). Not a test: timings from one run on a shared machine; compare the ratios.
"""

from __future__ import annotations

import argparse
import math
import os
import random
import statistics
import time
from dataclasses import replace

from swiftlab import SkipSet, load_model, num_layers
from swiftlab.api import encode_prompt
from swiftlab.cli import DEMO_PROMPTS
from swiftlab.engine.decoding import reference_continuation
from swiftlab.engine.matchness import matchness_scores
from swiftlab.search.skipsearch import SearchConfig, SkipSearch


# ----- the two scikit-optimize arms ----------------------------------------------------------------
def skopt_optimizer(dims: int, kappa: float, n_points: int, seed: int):
    """An Optimizer whose GP is today's: fixed kernel exp(-hamming/l), noise 1e-2, standardized targets."""
    from skopt import Optimizer
    from skopt.learning import GaussianProcessRegressor
    from skopt.learning.gaussian_process.kernels import RBF
    from skopt.space import Real

    length = max(dims / 4, 1.0)
    gp = GaussianProcessRegressor(kernel=RBF(math.sqrt(length / 2), length_scale_bounds="fixed"), alpha=1e-2,
                                  normalize_y=True, optimizer=None)
    return Optimizer([Real(0.0, 1.0) for _ in range(dims)], base_estimator=gp, n_initial_points=0,
                     acq_func="LCB", acq_func_kwargs={"kappa": kappa}, acq_optimizer="sampling",
                     acq_optimizer_kwargs={"n_points": n_points}, random_state=seed, model_queue_size=1)


class SkoptSearch(SkipSearch):
    """One Optimizer per search (built once: ~150 ms of scipy distributions), told every scored point
    (in one batch, fitted at the next Bayesian proposal)."""

    n_points = 1  # skopt's own sampling inside tell(): unused here

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.opt = skopt_optimizer(self.dims, self.config.kappa, self.n_points, self.config.seed)
        self.pending: list[tuple[list[float], float]] = []

    def observe(self, proposals, scores, wall_s: float = 0.0) -> None:
        super().observe(proposals, scores, wall_s)
        for (_, skip_set), score in zip(proposals, scores):
            self.pending.append((list(map(float, skip_set.to_mask())), -self.objective(skip_set, score)))  # minimized

    def flush(self, fit: bool) -> None:
        if self.pending:
            self.opt.tell([x for x, _ in self.pending], [y for _, y in self.pending], fit=fit)
            self.pending = []


class SkoptPoolSearch(SkoptSearch):
    """skopt's fitted GP and its LCB acquisition rank our pool (the same candidates as today's)."""

    def _bayes_proposal(self, taken=()) -> SkipSet:
        from skopt.acquisition import _gaussian_acquisition

        pool = [m for m in self._pool() if m not in self._scored and m not in taken]
        self.flush(fit=True)
        if not pool or not self.opt.models:
            return self._random_set(self._rng.choice(self.counts))
        lcb = _gaussian_acquisition(self.opt.space.transform(pool), self.opt.models[-1], acq_func="LCB",
                                    acq_func_kwargs={"kappa": self.config.kappa})
        best = min(range(len(pool)), key=lcb.__getitem__)
        return SkipSet.from_coordinates(self.num_layers, [j for j, v in enumerate(pool[best]) if v])


class SkoptAskSearch(SkoptSearch):
    """skopt's own ask() (argmin of LCB over n_points uniform points), projected by top-k coordinates."""

    n_points = 256  # today's pool size

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self._k_rng = random.Random(self.config.seed)

    def _bayes_proposal(self, taken=()) -> SkipSet:
        self._pool()  # draws what today's pool draws, so the random proposals stay the same stream
        self.flush(fit=True)
        if not self.opt.models:
            return self._random_set(self._rng.choice(self.counts))
        point = self.opt.ask()
        k = self._k_rng.choice(self.counts)  # its own generator: the random proposals' stream stays today's
        top = sorted(range(self.dims), key=lambda j: -point[j])[:k]
        return SkipSet.from_coordinates(self.num_layers, top)


def today_all(num_layers: int, config: SearchConfig) -> SkipSearch:
    """Today's GP fitted to every scored point, as skopt's is: the library's cost at equal data."""
    return SkipSearch(num_layers, replace(config, history=10**9))


ARMS = {"today": SkipSearch, "today-all": today_all, "skopt-pool": SkoptPoolSearch, "skopt-ask": SkoptAskSearch}


# ----- scoring -----------------------------------------------------------------------------------
class Scorer:
    """Matchness of skip sets on one fixed text, memoized (every arm gets the same score for a set)."""

    def __init__(self, model, tokenizer, window: int, new_tokens: int):
        self.model, self.window = model, window
        self.tokens, self.cache = reference_continuation(model, encode_prompt(tokenizer, DEMO_PROMPTS[0]), new_tokens)
        self.memo: dict[tuple, float] = {}
        self.passes, self.pass_s = 0, 0.0

    def __call__(self, sets: list[SkipSet]) -> list[float]:
        todo = [s for s in sets if (s.attention, s.mlp) not in self.memo]
        if todo:
            t = time.perf_counter()
            scores = matchness_scores(self.model, self.cache, self.tokens, self.window, todo)
            self.pass_s += time.perf_counter() - t
            self.passes += 1
            self.memo.update({(s.attention, s.mlp): v for s, v in zip(todo, scores)})
        return [self.memo[(s.attention, s.mlp)] for s in sets]


def config(steps: int, beta: int, seed: int, window: int) -> SearchConfig:
    return SearchConfig(bayes_interval=beta, max_steps=steps, tolerance=10**6, max_score=math.inf, seed=seed,
                        window=window)


# ----- (a) ms per ask + tell ---------------------------------------------------------------------
def observed_points(L: int, n: int, scorer: Scorer, seed: int) -> list[tuple[SkipSet, float]]:
    rng = random.Random(seed)
    sets = [SkipSet.random(L, 0.45, seed=rng.randrange(2**31)) for _ in range(n)]
    return list(zip(sets, scorer(sets)))


def time_ask_tell(arm: str, L: int, points, beta: int) -> float:
    """Seconds to observe the last of `points` and make the Bayesian proposal that follows."""
    search = ARMS[arm](L, config(10**6, beta, 0, 32))
    search.observe(search.propose(), [points[0][1]])  # the start set
    for skip_set, score in points[1:-1]:
        search.observe([("random", skip_set)], [score])
    if isinstance(search, SkoptSearch):  # steady state: all but the last β-1 points told before
        keep = search.pending[-(beta - 1):]
        search.pending = search.pending[:-(beta - 1)]
        search.flush(fit=False)
        search.pending = keep
    search.iteration = beta - 2  # observing the last point makes the next proposal a Bayesian one
    t = time.perf_counter()
    search.observe([("random", points[-1][0])], [points[-1][1]])
    proposal = search.propose()
    elapsed = time.perf_counter() - t
    assert proposal[0][0] == "bayes"
    return elapsed


def construction_ms(L: int, repeats: int) -> dict:
    """What building each arm's search costs (once per search)."""
    out = {arm: [] for arm in ARMS}
    for r in range(repeats):
        for arm in (ARMS if r % 2 == 0 else list(ARMS)[::-1]):
            t = time.perf_counter()
            ARMS[arm](L, config(10, 25, 0, 32))
            out[arm].append((time.perf_counter() - t) * 1e3)
    return {arm: statistics.median(ts) for arm, ts in out.items()}


def single_pass_ms(scorer: Scorer, L: int, repeats: int) -> float:
    """One scoring pass of one candidate, as a search step with candidates_per_step=1 runs it."""
    times = []
    for r in range(repeats):
        s = SkipSet.random(L, 0.45, seed=10**6 + r)
        t = time.perf_counter()
        matchness_scores(scorer.model, scorer.cache, scorer.tokens, scorer.window, [s])
        times.append((time.perf_counter() - t) * 1e3)
    return statistics.median(times)


def cost_table(L: int, scorer: Scorer, sizes, repeats: int, beta: int) -> dict:
    times = {(arm, n): [] for arm in ARMS for n in sizes}
    for n in sizes:
        points = observed_points(L, n + 1, scorer, seed=n)  # + the start set
        for r in range(repeats):
            order = list(ARMS) if r % 2 == 0 else list(ARMS)[::-1]  # alternating
            for arm in order:
                times[arm, n].append(time_ask_tell(arm, L, points, beta) * 1e3)
    return times


def spread(xs: list[float]) -> str:
    if len(xs) < 4:
        return f"{min(xs):.1f}-{max(xs):.1f}"
    q = statistics.quantiles(xs, n=4)
    return f"{q[0]:.1f}-{q[2]:.1f}"


# ----- (b) best matchness after N steps ----------------------------------------------------------
def run_searches(L: int, scorer: Scorer, steps: int, beta: int, seed: int, window: int) -> dict:
    """The arms in lockstep on one seed: each step's new sets, all arms', scored in one batched pass."""
    searches = {arm: ARMS[arm](L, config(steps, beta, seed, window)) for arm in ARMS}
    bayes_s = dict.fromkeys(ARMS, 0.0)
    while not all(search.done for search in searches.values()):
        proposals = {}
        for arm, search in searches.items():
            if not search.done:
                t = time.perf_counter()
                proposals[arm] = search.propose()
                if proposals[arm][0][0] == "bayes":
                    bayes_s[arm] += time.perf_counter() - t
        scorer([s for props in proposals.values() for _, s in props])
        for arm, props in proposals.items():
            searches[arm].observe(props, scorer([s for _, s in props]))
    out = {}
    for arm, search in searches.items():
        bayes = [(tuple(s.attention), tuple(s.mlp)) for s in search.trajectory.steps if s.kind == "bayes"]
        out[arm] = (search.best_score, bayes, bayes_s[arm])
    return out


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--models", default="lab,smollm2-135m")
    p.add_argument("--sizes", type=int, nargs="+", default=[16, 64, 200], help="points observed before an ask")
    p.add_argument("--repeats", type=int, default=7)
    p.add_argument("--steps", type=int, default=200, help="N: search steps per run")
    p.add_argument("--betas", type=int, nargs="+", default=[25, 5], help="Bayes intervals (25: the default)")
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    p.add_argument("--window", type=int, default=32)
    p.add_argument("--quick", action="store_true", help="lab model, tiny sizes: a smoke run")
    args = p.parse_args()
    if args.quick:
        args.models, args.sizes, args.repeats, args.steps, args.betas, args.seeds = "lab", [16], 2, 12, [4], [0]

    t = time.perf_counter()
    try:
        import skopt  # noqa: F401  (its import, once per process, is not an ask's cost)
    except ImportError:
        print("search_gp.py measures scikit-optimize, which swiftlab does not need: pip install scikit-optimize==0.10.2")
        return 2

    print(f"# search_gp: load {os.getloadavg()}; arms: {', '.join(ARMS)}; importing skopt took "
          f"{time.perf_counter() - t:.2f} s")
    for name in args.models.split(","):
        model, tokenizer = load_model(name)
        L = num_layers(model)
        scorer = Scorer(model, tokenizer, args.window, args.window + 8)
        scorer([SkipSet.uniform(L, 0.45)])  # warm up
        pass_ms = single_pass_ms(scorer, L, max(args.repeats, 3))
        built = construction_ms(L, max(args.repeats, 3))
        print(f"\n## {name}: {L} layers, {2 * (L - 2)} coordinates, skip ratio 0.45, window {args.window}")
        print(f"a scoring pass (one candidate): {pass_ms:.1f} ms; building a search: "
              + ", ".join(f"{arm} {ms:.1f} ms" for arm, ms in built.items()))
        times = cost_table(L, scorer, args.sizes, args.repeats, beta=25)
        print(f"(a) ms per ask+tell, median (IQR) of {args.repeats}, the arms alternating")
        print(f"| observed | {' | '.join(ARMS)} | skopt-pool / today | skopt-ask / today | "
              "skopt-pool / today-all |")
        print("| --- |" + " --- |" * (len(ARMS) + 3))
        for n in args.sizes:
            med = {arm: statistics.median(times[arm, n]) for arm in ARMS}
            cells = " | ".join(f"{med[arm]:.1f} ({spread(times[arm, n])})" for arm in ARMS)
            print(f"| {n} | {cells} | {med['skopt-pool'] / med['today']:.2f}x | "
                  f"{med['skopt-ask'] / med['today']:.2f}x | {med['skopt-pool'] / med['today-all']:.2f}x |", flush=True)

        print(f"(b) best matchness after N = {args.steps} steps (same seeds, same memoized scores)")
        print(f"| β | seed | {' | '.join(ARMS)} | bayes proposals | skopt-pool same as today | "
              f"skopt-pool same as today-all | Bayes ms per step ({' / '.join(ARMS)}) |")
        print("| --- | --- |" + " --- |" * (len(ARMS) + 4))
        for beta in args.betas:
            bests = {arm: [] for arm in ARMS}
            for seed in args.seeds:
                out = run_searches(L, scorer, args.steps, beta, seed, args.window)
                for arm in ARMS:
                    bests[arm].append(out[arm][0])
                count = len(out["today"][1])
                same = sum(a == b for a, b in zip(out["today"][1], out["skopt-pool"][1]))
                same_all = sum(a == b for a, b in zip(out["today-all"][1], out["skopt-pool"][1]))
                per = " / ".join(f"{out[arm][2] / max(count, 1) * 1e3:.1f}" for arm in ARMS)
                print(f"| {beta} | {seed} | {' | '.join(f'{out[arm][0]:.3f}' for arm in ARMS)} | "
                      f"{count} | {same}/{count} | {same_all}/{count} | {per} |", flush=True)
            means = {arm: statistics.mean(bests[arm]) for arm in ARMS}
            print(f"| {beta} | mean | {' | '.join(f'{means[arm]:.3f}' for arm in ARMS)} | | | | |")
    print(f"\n# load after: {os.getloadavg()}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
