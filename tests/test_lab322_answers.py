"""Lab 3.2.2's trusted answers (labs/lab322/answers.py): properties, hand-counted bytes and DESIGN §9's ordering.

Expected values are computed here independently where that is feasible (bytes counted by hand, the
metrics with numpy loops, INT8 per-tensor quantization with numpy), never copied from the code under test.
"""

from __future__ import annotations

import itertools
import math
import random

import numpy as np
import pytest
import torch

from reference import weights as W

pytestmark = pytest.mark.skipif(not W.have_model(), reason=f"MiniLM weights not installed: {W.INSTALL}")
pytest.importorskip("tokenizers", reason="the tokenizers package is not installed: pip install tokenizers")

from labs.lab322 import answers as A  # noqa: E402
from reference import minilm  # noqa: E402

OUTLIER = W.OUTLIER_LAYER


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    """One thread: the forward passes are small, and extra threads only contend on a shared machine."""
    old = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(old)


@pytest.fixture(scope="module")
def table():
    return A.format_table(A.sentences("public"))


# ---- sentences ----------------------------------------------------------------------------------

def test_sentence_sets_are_separate_and_licensed():
    public, hidden = A.sentences("public"), A.sentences("hidden")
    assert len(public) == 40 and len(hidden) == 20
    assert not set(public) & set(hidden) and len(set(public)) == 40 and len(set(hidden)) == 20
    assert not any(s.startswith("#") for s in public + hidden)
    for path in A.SENTENCE_FILES.values():
        assert "CC0" in path.read_text(encoding="utf-8").splitlines()[0]
    with pytest.raises(ValueError, match="public"):
        A.sentences("secret")


# ---- bytes, counted by hand ---------------------------------------------------------------------

# A (4, 256) matrix: 1024 elements, 4 output rows, 8 groups of 128, 64 NVFP4 blocks, 32 MXFP4 blocks.
HAND_BYTES = {
    "fp32": 4096, "bf16": 2048,
    "int8": 1024 + 4, "int8_per_channel": 1024 + 4 * 4, "fp8_e4m3fn": 1024 + 4,
    "int4": 512 + 4, "int4_g128": 512 + 8 * 4,
    "nvfp4": 512 + 64 * 1 + 4,  # E4M3 block scales + the FP32 tensor scale
    "mxfp4": 512 + 32 * 1,  # E8M0 block scales
}


@pytest.mark.parametrize("scheme", sorted(HAND_BYTES))
def test_matrix_bytes_by_hand(scheme):
    assert A.matrix_bytes(scheme, (4, 256)) == HAND_BYTES[scheme]


def test_plan_bytes_of_a_tiny_plan_and_of_minilm():
    shapes = {"a": (4, 256), "b": (2, 128)}
    assert A.plan_bytes({"a": "nvfp4", "b": "int8_per_channel"}, shapes) == 580 + (256 + 2 * 4)
    with pytest.raises(ValueError, match="missing"):
        A.plan_bytes({"a": "nvfp4"}, shapes)
    with pytest.raises(ValueError, match="unknown scheme"):
        A.plan_bytes({"a": "nvfp4", "b": "int3"}, shapes)
    # MiniLM: 6 blocks of 4 (384, 384) and 2 (1536 x 384) matrices; per-channel: one FP32 scale per output row.
    n = 6 * (4 * 384 * 384 + 2 * 384 * 1536)
    rows = 6 * (4 * 384 + 1536 + 384)
    assert A.plan_bytes(A.uniform_plan("fp32")) == 4 * n
    assert A.plan_bytes(A.uniform_plan("int8_per_channel")) == n + 4 * rows
    assert A.plan_bytes(A.uniform_plan("nvfp4")) == n // 2 + n // 16 + 36 * 4


# ---- metrics, checked against numpy loops -------------------------------------------------------

def _spearman(x, y):
    def ranks(v):  # average ranks for ties
        order = sorted(range(len(v)), key=lambda i: v[i])
        r = [0.0] * len(v)
        i = 0
        while i < len(v):
            j = i
            while j + 1 < len(v) and v[order[j + 1]] == v[order[i]]:
                j += 1
            for k in range(i, j + 1):
                r[order[k]] = (i + j) / 2
            i = j + 1
        return np.array(r)
    return float(np.corrcoef(ranks(x), ranks(y))[0, 1])


def test_metrics_match_an_independent_computation():
    g = torch.Generator().manual_seed(3)
    ref = torch.randn(12, 16, generator=g)
    emb = ref + 0.5 * torch.randn(12, 16, generator=g)
    r, e = ref.double().numpy(), emb.double().numpy()
    r, e = r / np.linalg.norm(r, axis=1, keepdims=True), e / np.linalg.norm(e, axis=1, keepdims=True)
    pairs = list(itertools.combinations(range(12), 2))
    sim_r, sim_e = [float(r[i] @ r[j]) for i, j in pairs], [float(e[i] @ e[j]) for i, j in pairs]

    def nearest(m):
        return [max((j for j in range(12) if j != i), key=lambda j: float(m[i] @ m[j])) for i in range(12)]

    m = A.metrics(ref, emb)
    assert m["cosine"] == pytest.approx(float(np.mean(np.sum(r * e, axis=1))), abs=1e-12)
    assert m["min_cosine"] == pytest.approx(float(np.min(np.sum(r * e, axis=1))), abs=1e-12)
    assert m["rank_correlation"] == pytest.approx(_spearman(sim_r, sim_e), abs=1e-12)
    assert m["top1"] == pytest.approx(np.mean([a == b for a, b in zip(nearest(r), nearest(e))]), abs=1e-12)


def test_fp32_weights_score_exactly_one():
    m = A.evaluate(A.uniform_plan("fp32"), A.sentences("hidden"))
    assert m["cosine"] == pytest.approx(1.0, abs=1e-12) and m["min_cosine"] == pytest.approx(1.0, abs=1e-12)
    assert m["rank_correlation"] == 1.0 and m["top1"] == 1.0


# ---- DESIGN §9's table ---------------------------------------------------------------------------

def test_format_table_keeps_design_order(table):
    cos = [table[s]["cosine"] for s in A.TABLE]  # DESIGN §9: 0.9996 > 0.998 > 0.975 > 0.973 > 0.963 > 0.939 > 0.40
    assert cos == sorted(cos, reverse=True), dict(zip(A.TABLE, cos))
    assert table["int8_per_channel"]["cosine"] > 0.999 and table["fp8_e4m3fn"]["cosine"] > 0.995
    assert 0.9 < table["int4_g128"]["cosine"] < 0.96 and table["int4"]["cosine"] < 0.6
    assert table["int8_per_channel"]["rank_correlation"] > table["int8"]["rank_correlation"]
    # the same bytes (n + 4) buy very different quality: per-tensor FP8 vs per-tensor INT8
    assert table["fp8_e4m3fn"]["bytes"] == table["int8"]["bytes"]


def test_int8_per_tensor_figure_independently(table):
    """INT8 per-tensor done in numpy (scale amax / 127, round half to even) gives the table's cosine."""
    w = minilm.load()
    q = {}
    for name in W.layer_names():
        x = w[name].numpy()
        s = np.float32(np.abs(x).max()) / np.float32(127)
        q[name] = torch.from_numpy((np.clip(np.round(x / s), -127, 127) * s).astype(np.float32))
    texts = A.sentences("public")
    ref, emb = minilm.encode(texts), minilm.encode(texts, q)
    expected = float(np.mean(np.sum(ref.double().numpy() * emb.double().numpy(), axis=1)))
    assert table["int8"]["cosine"] == pytest.approx(expected, abs=1e-6)


# ---- exercise 1: layer sensitivity ------------------------------------------------------------

def test_outlier_layer_ranks_first_for_int8_per_tensor():
    ranking = A.layer_sensitivity("int8")
    assert [name for name, _ in ranking][0] == OUTLIER
    assert len(ranking) == 36 and [c for _, c in ranking] == sorted(c for _, c in ranking)
    assert 0.98 < ranking[0][1] < 0.995  # DESIGN §9: this one layer alone drops the cosine to ~0.99
    assert ranking[-1][1] > 0.999


def test_keeping_the_outlier_layer_costs_its_row_scales():
    k = A.keep_one_layer("int8", OUTLIER, "int8_per_channel")
    assert k["kept"]["bytes"] - k["all"]["bytes"] == 384 * 4 - 4  # 384 row scales instead of one
    assert k["kept"]["cosine"] > k["all"]["cosine"]


# ---- exercise 2: the mixed-precision plan -------------------------------------------------------

def test_cheapest_plan_is_exact_on_small_problems():
    rng = random.Random(7)
    schemes = ("a", "b", "c")
    for trial in range(20):
        layers = [f"l{i}" for i in range(4)]
        drops = {l: {s: round(rng.uniform(0, 0.004), 6) for s in schemes} for l in layers}
        costs = {l: {s: rng.randint(1, 50) for s in schemes} for l in layers}
        budget = rng.uniform(0.002, 0.012)
        feasible = [c for c in itertools.product(schemes, repeat=4)
                    if sum(drops[l][s] for l, s in zip(layers, c)) <= budget + 1e-12]
        if not feasible:
            with pytest.raises(ValueError):
                A.cheapest_plan(drops, costs, budget)
            continue
        best = min(sum(costs[l][s] for l, s in zip(layers, c)) for c in feasible)
        plan = A.cheapest_plan(drops, costs, budget)
        assert sum(costs[l][plan[l]] for l in layers) == best, (trial, plan)
        assert sum(drops[l][plan[l]] for l in layers) <= budget + 1e-12


def test_reference_plan_meets_the_floor_on_hidden_sentences_at_fewer_bytes(table):
    plan = A.reference_plan()
    assert sorted(plan) == sorted(W.layer_names())
    m = A.evaluate(plan, A.sentences("hidden"))
    assert m["cosine"] >= A.COSINE_FLOOR, m
    assert A.evaluate(plan, A.sentences("public"))["cosine"] >= A.COSINE_FLOOR
    cost = A.plan_bytes(plan)
    # cheaper than every uniform plan that meets the floor; every cheaper uniform plan misses it
    meets = [s for s in A.TABLE if table[s]["cosine"] >= A.COSINE_FLOOR]
    assert meets and all(cost < table[s]["bytes"] for s in meets), meets
    assert all(table[s]["cosine"] < A.COSINE_FLOOR for s in A.TABLE if table[s]["bytes"] < cost)
    assert cost < 0.75 * A.plan_bytes(A.uniform_plan("int8_per_channel"))


# ---- exercise 3: W8A8 ---------------------------------------------------------------------------

def test_w8a8_per_token_beats_per_tensor():
    r = A.w8a8(A.sentences("public"))
    assert r["weights_only"]["cosine"] > r["per_token"]["cosine"] > r["per_tensor"]["cosine"]
    assert r["per_token"]["rank_correlation"] > r["per_tensor"]["rank_correlation"]
    x = torch.tensor([[1.0, -0.5, 0.25], [100.0, 3.0, -7.0]])
    assert torch.equal(A.act_int8_per_token(x)[0], torch.round(x[0] / (1 / 127)) * (1 / 127))
    per_tensor = A.act_int8_per_tensor(x)
    assert per_tensor[0, 2] == 0.0  # 0.25 is below half a step of 100/127: lost with one scale for both tokens


# ---- stochastic rounding ------------------------------------------------------------------------

@pytest.mark.parametrize("fmt, spacing", [("bf16", 2.0 ** -7), ("fp8_e4m3fn", 2.0 ** -3)])
def test_small_updates_stall_under_nearest_and_survive_stochastic(fmt, spacing):
    d = A.stochastic_rounding_demo(fmt, w0=1.0, steps=400, trials=2000, seed=1)
    assert d["spacing"] == spacing and d["update"] < spacing / 2
    assert d["nearest"] == 1.0  # every update below half a step is rounded away
    assert d["exact"] == pytest.approx(1.0 + 400 * d["update"])
    stderr = d["stochastic_std"] / math.sqrt(2000)
    assert abs(d["stochastic_mean"] - d["exact"]) < 5 * stderr


def test_round_stochastic_is_unbiased_and_on_the_grid():
    g = torch.Generator().manual_seed(0)
    x = torch.full((20000,), 1.3)
    r = A.round_stochastic(x, "fp8_e4m3fn", g)
    assert set(r.unique().tolist()) == {1.25, 1.375}
    assert float(r.mean()) == pytest.approx(1.3, abs=0.003)
    exact = torch.tensor([1.25, -448.0, 0.0])
    assert torch.equal(A.round_stochastic(exact, "fp8_e4m3fn", g), exact.double())
