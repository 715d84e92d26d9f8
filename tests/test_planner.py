import json

import jax
import jax.numpy as jnp
import pandas as pd
import pytest
from conftest import data_config, model_config
from flax import nnx

from scalinglab.cli import main
from scalinglab.data.batches import batch
from scalinglab.data.corpus import corpus_dir, load_corpus
from scalinglab.errors import SpecError
from scalinglab.model import counts
from scalinglab.model.kernels import Attention
from scalinglab.model.transformer import TransformerLM, count_params
from scalinglab.store.runs import Role
from scalinglab.sweep import planner
from scalinglab.sweep.counts import shape_for
from scalinglab.sweep import read
from scalinglab.sweep.read import parse
from scalinglab.sweep.spec import ModelSpec
from scalinglab.training.steps import make_loss_fn
from scalinglab.training.throughput import computed_flops_per_token

SHAPES = [(1, 8, 1, 32), (1, 16, 2, 40), (2, 32, 4, 128), (3, 48, 3, 100), (4, 64, 8, 256), (2, 96, 6, 384), (6, 128, 4, 512), (3, 200, 5, 333)]


@pytest.mark.parametrize("n_layers,d_model,n_heads,d_ff", SHAPES)
def test_planner_N_equals_real_parameter_tree(n_layers, d_model, n_heads, d_ff):
    seq_len, vocab = 64, 256
    model = TransformerLM(model_config(n_layers, d_model, n_heads, d_ff, seq_len, vocab), rngs=nnx.Rngs(0))
    N = counts.count_N(n_layers, d_model, d_ff)
    assert count_params(model) == N
    assert count_params(model, non_embedding=False) == counts.count_N_total(N, d_model, seq_len, vocab)


def test_planned_runs_match_their_models():
    sweep = parse({"name": "s", "grid": {"N": [1e4, 1e5, 1e6, 1e7], "tokens_per_param": [20]}})
    for run in planner.plan(sweep):
        model = nnx.eval_shape(lambda run=run: TransformerLM(run.model, rngs=nnx.Rngs(0)))  # shapes only: no 10M draws
        assert count_params(model) == run.N
        assert count_params(model, non_embedding=False) == run.N_total
        assert abs(run.D / run.N - 20) / 20 < 0.05


def trained_tokens(run, corpus, steps: range) -> int:
    """The tokens of the batches the Trainer draws for these steps of a run (data.batches.batch,
    then the objective's examples): the targets its loss is taken over."""
    tokens = 0
    for step in steps:
        windows = batch(corpus.train, run.model.seq_len, run.batch_size, run.seed, step)
        _, targets, _ = run.model.objective.examples(windows, run.data.vocab_size, run.seed, step, slice(None), run.batch_size)
        tokens += targets.size
    return tokens


def test_D_is_the_tokens_of_the_batches_a_run_trains_on(tmp_path):
    """D counted from the real batches: of the runs of a product grid, of an IsoFLOP grid, of the
    masked objective, and of cooldown branches, which train on their trunk's batches up to the
    branch point and then on their own."""
    path = tmp_path / "corpus.jsonl"
    path.write_text("".join(json.dumps({"text": f"document {i} " * 30}) + "\n" for i in range(300)))
    base = {"name": "d", "data": {"source": "jsonl", "path": str(path), "val_tokens": 256}, "model": {"seq_len": 32},
            "grid": {"shapes": [{"n_layers": 1, "d_model": 16, "n_heads": 2}, {"n_layers": 2, "d_model": 32, "n_heads": 2}],
                     "D": [1500, 3000]}, "train": {"batch_size": 4, "n_evals": 2}}
    sweeps = [base, {**base, "train": {**base["train"], "objective": "masked"}},
              {**base, "grid": {**base["grid"], "D": None, "C": [1e9, 2e9]}, "seeds": [3]},
              {**base, "train": {**base["train"], "schedule": "wsd", "cooldown_branches": True}}]
    runs = [run for doc in sweeps for run in planner.plan(parse(doc))]
    corpus = load_corpus(runs[0].data)
    trunks = {r.run_id: r for r in runs if r.role == Role.TRUNK}
    assert len(trunks) == 2 and sum(r.trunk_id is not None for r in runs) == 4
    for run in runs:
        trunk = trunks.get(run.trunk_id, run)
        before, after = range(1, run.start_step + 1), range(run.start_step + 1, run.steps + 1)
        assert trained_tokens(trunk, corpus, before) + trained_tokens(run, corpus, after) == run.D, run.run_id


@pytest.mark.parametrize("target", [2e4, 1e5, 3e5, 1e6, 1e7, 1e8])
def test_shape_rule_lands_near_target_with_the_aspect_ratio(target):
    s = shape_for(target, ModelSpec(d_head=32, aspect_ratio=32))
    N = s.N
    assert 0.6 < N / target < 1.6
    assert s.d_model == s.n_heads * 32
    if target >= 1e6:  # deep enough for the ratio to be meaningful
        assert 16 <= s.d_model / s.n_layers <= 64


def test_run_ids_are_deterministic_and_distinct():
    doc = {"name": "s", "grid": {"N": [2e4, 8e4], "D": [1e5, 2e5]}, "seeds": [0, 1]}
    a, b = planner.plan(parse(doc)), planner.plan(parse(doc))
    assert [r.run_id for r in a] == [r.run_id for r in b]
    assert len({r.run_id for r in a}) == 8
    changed = planner.plan(parse({**doc, "train": {"lr": 1e-3}}))
    assert not {r.run_id for r in changed} & {r.run_id for r in a}


# XLA's cost analysis counts a while loop's body once, whatever its trip count, and the blocks run as
# one lax.scan: with one layer its count is the whole step's. Depth only multiplies the per-layer
# terms, whose parameters are checked at every depth against the real tree above.
@pytest.mark.parametrize("d_model,n_heads,seq_len,objective", [(32, 2, 32, "causal"), (64, 4, 64, "masked"), (128, 4, 128, "causal")])
def test_flops_per_token_are_what_xla_counts_in_a_training_step(d_model, n_heads, seq_len, objective):
    """The planner's FLOPs per token (and so C) against XLA's cost analysis of the real compiled
    forward and backward pass (the Trainer's loss, value_and_grad), with XLA's attention, which
    computes the whole score matrix as the PaLM convention counts it. XLA counts more: the
    elementwise work (softmax over the scores and over the vocabulary, LayerNorm, GELU, residual
    adds, the loss), 22 to 33 FLOPs per element of a token's widest activations (its attention
    scores, MLP hidden units and logits) on one-layer models from d_model 32 to 512, which is 7% of
    the step at d_model 32 and 0.4% at 512: the matmuls dominate. With 40 per element allowed, a
    matmul term left out or counted twice breaks a bound: the smallest, attention's 12 n_layers
    seq_len d_model, is 12,288 FLOPs at the first shape, where XLA counts 10,076 more than the
    planner and 17,920 more are allowed."""
    shape = {"n_layers": 1, "d_model": d_model, "n_heads": n_heads}
    doc = {"name": "s", "model": {"seq_len": seq_len}, "grid": {"shapes": [shape], "D": [1e5]},
           "train": {"batch_size": 4, "objective": objective}}
    run = planner.plan(parse(doc))[0]
    model = TransformerLM(run.model, rngs=nnx.Rngs(0), attention=Attention.XLA)
    graphdef, params = nnx.split(model)
    tokens, weights = jnp.zeros((4, seq_len), jnp.int32), jnp.ones((4, seq_len), jnp.float32)
    step = jax.jit(jax.value_and_grad(make_loss_fn(run.precision, graphdef))).lower(params, tokens, tokens, weights).compile()
    xla = step.cost_analysis()["flops"] / tokens.size
    assert computed_flops_per_token(run, model.blocks.kind) == run.flops_per_token  # XLA's attention: the whole matrix
    widest = n_heads * seq_len + run.model.d_ff + run.model.vocab_size
    assert run.flops_per_token <= xla <= run.flops_per_token + 40 * widest, (xla, run.flops_per_token)
    assert run.C <= xla * run.D <= run.C + 40 * widest * run.D  # the run's compute: that count over its D tokens


def test_same_shape_twice_is_rejected():
    with pytest.raises(SpecError, match=r"grid.N\[1\]: gives the same shape as grid.N\[0\]"):
        planner.plan(parse({"name": "s", "grid": {"N": [1e5, 1.01e5], "D": [1e5]}}))


def test_plan_command_prints_totals_and_writes_csv_and_json(sweep_file, tmp_path, capsys):
    assert main(["plan", str(sweep_file()), "--csv", str(tmp_path / "p.csv"), "--json", str(tmp_path / "p.json")]) == 0
    out = capsys.readouterr().out
    assert "runs 4" in out and "total C" in out and "estimated wall time" in out
    rows = json.loads((tmp_path / "p.json").read_text())
    assert len(rows) == 4 and {"run_id", "N", "N_total", "D", "steps", "flops_per_token", "C"} <= set(rows[0])
    assert (tmp_path / "p.csv").read_text().splitlines()[0].startswith("run_id,")


PRECISION_SWEEP = {"name": "p", "grid": {"shapes": [{"n_layers": 1, "d_model": 32, "n_heads": 2}], "D": [64 * 128 * 10]},
                   "train": {"batch_size": 64}}  # fmt: skip


def precision_sweep(train=None, launch=None):
    return parse({**PRECISION_SWEEP, "train": {**PRECISION_SWEEP["train"], **(train or {})}, "launch": launch or {}})


@pytest.mark.parametrize("train, launch, tpu, precision", [
    ({}, {}, False, "fp32"),  # a CPU sweep: as before bf16 was the accelerators' default
    ({}, {"gpus_per_job": 1}, False, "bf16"),
    ({}, {"executor": "slurm", "gpus_per_job": 8, "slurm": {"nodes": 2}}, False, "bf16"),
    ({}, {}, True, "bf16"),  # a TPU VM's jobs use its chips
    ({"precision": "fp32"}, {"gpus_per_job": 1}, False, "fp32"),  # asked for: honoured
    ({"precision": "bf16"}, {}, False, "bf16"),
])  # fmt: skip
def test_precision_is_bf16_on_accelerators_and_fp32_on_cpus_unless_the_sweep_says(train, launch, tpu, precision):
    spec = precision_sweep(train, launch)
    assert spec.train.precision == train.get("precision")  # unset stays unset in the spec (and its sweep.json)
    assert planner.run_precision(spec, tpu) == precision
    assert {r.precision for r in planner.plan(spec, tpu=tpu)} == {precision}


def test_unset_precision_keeps_a_cpu_sweeps_run_ids_and_records():
    default, fp32 = planner.plan(precision_sweep()), planner.plan(precision_sweep({"precision": "fp32"}))
    assert [r.record() for r in default] == [r.record() for r in fp32] and [r.run_id for r in default] == [r.run_id for r in fp32]


def test_fp32_asked_for_on_gpus_is_said_in_one_line(sweep_file, capsys):
    assert planner.precision_warning(precision_sweep()) is None
    assert planner.precision_warning(precision_sweep(launch={"gpus_per_job": 1})) is None
    assert planner.precision_warning(precision_sweep({"precision": "bf16"}, {"gpus_per_job": 1})) is None
    warning = planner.precision_warning(precision_sweep({"precision": "fp32"}, {"gpus_per_job": 1}))
    assert warning is not None and "\n" not in warning and "TF32 matmuls" in warning and "XLA's attention" in warning
    assert main(["plan", str(sweep_file(train={"batch_size": 4, "lr": 1e-2, "n_evals": 2, "precision": "fp32"}, launch={"gpus_per_job": 1}))]) == 0
    assert capsys.readouterr().out.count("TF32 matmuls") == 1


def test_isoflop_design_spends_each_budget_on_every_size():
    doc = {"name": "s", "grid": {"N": [2e4, 8e4, 3e5], "C": [1e12, 4e12]}}
    runs = planner.plan(parse(doc))
    assert len(runs) == 6
    for budget in (1e12, 4e12):
        at = [r for r in runs if abs(r.C / budget - 1) < 0.02]
        assert len(at) == 3 and len({r.N for r in at}) == 3
    with pytest.raises(SpecError, match=r"grid.C: budgets 1e\+12 and 1.1e\+12 are closer than 1.25x"):
        parse({"name": "s", "grid": {"N": [2e4], "C": [1e12, 1.1e12]}})


def test_lr_and_batch_size_axes_multiply_the_grid_and_keep_ids_deterministic():
    base = {"name": "s", "grid": {"N": [2e4, 8e4], "D": [4e5, 8e5]}}
    tuned = {**base, "grid": {**base["grid"], "lr": [1e-3, 3e-3, 1e-2], "batch_size": [8, 16]}}
    runs = planner.plan(parse(tuned))
    assert len(runs) == 2 * 2 * 3 * 2 and len({r.run_id for r in runs}) == len(runs)
    assert {(r.optim.lr, r.batch_size) for r in runs} == {(lr, b) for lr in (1e-3, 3e-3, 1e-2) for b in (8, 16)}
    assert [r.run_id for r in planner.plan(parse(tuned))] == [r.run_id for r in runs]
    # The default train.lr and batch_size, given as one-element lists, are the same runs as without the lists.
    same = {**base, "grid": {**base["grid"], "lr": [3e-3], "batch_size": [16]}}
    assert [r.run_id for r in planner.plan(parse(same))] == [r.run_id for r in planner.plan(parse(base))]
    for r in runs:  # each batch size trains the grid's tokens, to within one step's
        assert abs(r.D / round(r.D, -5) - 1) < 0.01


def test_lr_axis_with_cooldown_branches_gives_each_lr_its_own_trunk():
    spec = {"name": "s", "grid": {"N": [2e4], "D": [4e5, 8e5], "lr": [1e-3, 3e-3]},
            "train": {"schedule": "wsd", "cooldown_branches": True}}
    runs = planner.plan(parse(spec))
    trunks = [r for r in runs if r.role == "trunk"]
    assert sorted(t.optim.lr for t in trunks) == [1e-3, 3e-3]
    for r in runs:
        if r.role == "run":
            trunk = next(t for t in trunks if t.run_id == r.trunk_id)
            assert trunk.optim.lr == r.optim.lr


def test_points_plan_exactly_the_listed_pairs_with_the_product_grids_ids():
    product = planner.plan(parse({"name": "s", "grid": {"N": [2e4, 8e4], "D": [1e5, 2e5]}}))
    pairs = [{"N": 8e4, "D": 1e5}, {"N": 2e4, "D": 2e5}, {"N": 2e4, "D": 1e5}]
    runs = planner.plan(parse({"name": "s", "grid": {"points": pairs}}))
    assert len(runs) == 3  # not the 2 x 3 product of the values
    by_point = {(r.N, r.D): r.run_id for r in product}
    assert {r.run_id for r in runs} == {by_point[(r.N, r.D)] for r in runs}  # a point is the same run as in a product
    largest = (max(r.N for r in product), max(r.D for r in product))
    assert {(r.N, r.D) for r in runs} == {(r.N, r.D) for r in product} - {largest}


def test_a_point_may_give_a_shape_instead_of_N():
    shape = {"n_layers": 4, "d_model": 32, "n_heads": 2}
    product = planner.plan(parse({"name": "s", "grid": {"shapes": [shape], "D": [1e5]}}))
    assert [r.run_id for r in planner.plan(parse({"name": "s", "grid": {"points": [{"shape": shape, "D": 1e5}]}}))] == [product[0].run_id]


@pytest.mark.parametrize("grid,message", [
    ({"points": []}, r"^grid.points: empty list"),
    ({"points": [{"N": 2e4, "shape": {"n_layers": 1, "d_model": 32, "n_heads": 2}, "D": 1e5}]}, r"^grid.points\[0\]: give exactly one of 'N'"),
    ({"points": [{"N": 2e4, "D": 1e5}], "D": [1e5]}, r"^grid.D: not used with grid.points"),
    ({"points": [{"N": 2e4, "D": 1e5}, {"N": 2.01e4, "D": 1.0001e5}]}, r"^grid.points\[1\].D: 100,010 tokens: the same run as grid.points\[0\]"),
    ({"points": [{"N": 2e4}]}, r"^grid.points\[0\].D: required, but missing$"),
    ({"points": [{"D": 1e5}]}, r"^grid.points\[0\]: give exactly one of 'N'"),
    ({"points": [{"N": 2e4, "D": 1e3}]}, r"^grid.points\[0\].D: 1,000 tokens = 0.488 batches .* at least 10 steps"),
])
def test_bad_points_are_refused_naming_the_entry(grid, message):
    with pytest.raises(SpecError, match=message):
        planner.plan(parse({"name": "s", "grid": grid}))


def test_points_with_their_own_lr_and_batch_are_the_tuned_grids_runs():
    product = planner.plan(parse({"name": "s", "grid": {"N": [2e4, 8e4], "D": [1e5, 2e5], "lr": [1e-3, 3e-3], "batch_size": [8, 16]}}))
    ids = {(r.N, r.D, r.optim.lr, r.batch_size): r.run_id for r in product}
    points = [{"N": 8e4, "D": 1e5, "lr": 1e-3, "batch_size": 8}, {"N": 2e4, "D": 2e5, "lr": 3e-3},
              {"N": 8e4, "D": 2e5, "batch_size": 8}]
    runs = planner.plan(parse({"name": "s", "grid": {"points": points}, "train": {"lr": 3e-3, "batch_size": 16}}))
    assert len(runs) == 3
    assert {ids[(r.N, r.D, r.optim.lr, r.batch_size)] for r in runs} == {r.run_id for r in runs}
    assert sorted((r.optim.lr, r.batch_size) for r in runs) == [(1e-3, 8), (3e-3, 8), (3e-3, 16)]
    with pytest.raises(SpecError, match=r"grid.lr: not used with a grid.points entry that gives its own lr"):
        parse({"name": "s", "grid": {"points": points, "lr": [1e-3]}})


@pytest.mark.parametrize("sections,message", [
    ({"data": {"U": 1e5}, "grid": {"N": [2e4], "D": [4e5], "U": [1e5]}}, r"^data.U and grid.U: give U in one place; remove data.U$"),
    ({"grid": {"N": [2e4], "D": [4e5], "U": []}}, r"^grid.U: empty list"),
    ({"grid": {"N": [2e4], "D": [4e5], "U": [1e5, 1e5]}}, r"^grid.U: \[100000, 100000\] repeats a value$"),
    ({"grid": {"N": [2e4], "D": [4e5], "U": [1e5, 100]}}, r"^grid.U\[1\]: 100 tokens are too few for a training window of model.seq_len 128; give at least 130$"),
    ({"data": {"U": 0}, "grid": {"N": [2e4], "D": [4e5]}}, r"^data.U: "),
])
def test_bad_U_is_refused_naming_the_entry(sections, message):
    with pytest.raises(SpecError, match=message):
        parse({"name": "s", **sections})


def test_plan_shows_each_runs_epochs_and_warns_when_runs_repeat_data(sweep_file, tmp_path, capsys):
    split = len(load_corpus(data_config()).train)
    assert main(["plan", str(sweep_file()), "--json", str(tmp_path / "whole.json")]) == 0
    out = capsys.readouterr().out
    assert f"D/U: epochs over a run's U unique training tokens, the training split's {split:,}" in out and "warning" not in out
    rows = json.loads((tmp_path / "whole.json").read_text())
    assert {r["U"] for r in rows} == {split} and [r["epochs"] for r in rows] == pytest.approx([r["D"] / split for r in rows])

    capped = sweep_file(name="capped", grid={"U": [2000, 20_000]})  # 2 shapes x D 2,560, 5,120 x 2 caps
    assert main(["plan", str(capped), "--json", str(tmp_path / "capped.json")]) == 0
    out = capsys.readouterr().out
    table = out.splitlines()[out.splitlines().index(next(line for line in out.splitlines() if "run_id" in line)):]
    assert [c.strip() for c in table[0].split("┃")[1:-1]][7:10] == ["D/N", "U", "D/U"]
    assert "warning: 4 of 8 runs repeat their training data, up to 2.56 epochs (D/U > 1)" in out
    rows = json.loads((tmp_path / "capped.json").read_text())
    assert sorted((r["U"], r["D"], r["epochs"]) for r in rows)[:2] == [(2000, 2560, 1.28)] * 2


def test_plan_refuses_a_U_beyond_the_training_split_and_writes_nothing(sweep_file, tmp_path, capsys):
    split = len(load_corpus(data_config()).train)
    path = sweep_file(data={"U": split + 1})
    assert main(["plan", str(path), "--csv", str(tmp_path / "p.csv")]) == 2
    assert capsys.readouterr().err == (
        f"scalinglab: error: data.U: {split + 1:,} tokens, more than the corpus's training split holds ({split:,}); "
        "give at most that, or null for the whole split\n"
    )
    assert not (tmp_path / "p.csv").exists()


def test_plan_does_not_tokenize_a_bpe_corpus_to_count_it(sweep_file, tmp_path, capsys):
    corpus = tmp_path / "corpus.jsonl"
    corpus.write_text("".join(json.dumps({"text": f"document {i} " * 40}) + "\n" for i in range(300)))
    data = {"source": "jsonl", "path": str(corpus), "tokenizer": "bpe", "vocab_size": 300, "val_tokens": 256}
    path = sweep_file(data=data)
    assert main(["plan", str(path)]) == 0
    assert "whose size is not known yet (? in the table)" in capsys.readouterr().out
    assert not corpus_dir(planner.data_config(read.load(path))).exists()  # plan tokenized nothing
    assert main(["prepare", str(path)]) == 0
    assert main(["plan", str(path), "--json", str(tmp_path / "p.json")]) == 0
    split = len(load_corpus(planner.data_config(read.load(path))).train)
    assert {r["U"] for r in json.loads((tmp_path / "p.json").read_text())} == {split}


def test_grid_schedules_train_every_schedule_at_every_point_with_its_own_settings():
    doc = {
        "name": "s",
        "grid": {
            "N": [2e4, 8e4],
            "D": [4e5],
            "schedules": [{"schedule": "constant"}, {"schedule": "step", "cooldown_fraction": 0.3, "min_lr_ratio": 0.2}, {"schedule": "wsd"}],
        },
        "train": {"cooldown_fraction": 0.1},
    }
    runs = planner.plan(parse(doc))
    assert len(runs) == 6 and len({r.run_id for r in runs}) == 6
    by = {(r.N, r.optim.schedule.name): r.optim.schedule for r in runs}
    step, wsd = by[(runs[0].N, "step")], by[(runs[0].N, "wsd")]
    assert (step.min_lr_ratio, step.decay_start) == (0.2, step.steps - round(0.3 * step.steps))
    assert (wsd.min_lr_ratio, wsd.decay_start) == (0.1, wsd.steps - round(0.1 * wsd.steps))  # train's where unset
    alone = planner.plan(parse({**doc, "grid": {**doc["grid"], "schedules": [{"schedule": "wsd"}]}, "train": {"schedule": "wsd", "cooldown_fraction": 0.1}}))
    assert [r.run_id for r in alone] == [r.run_id for r in runs if r.optim.schedule.name == "wsd"]  # the same runs as train.schedule's


def test_plan_shows_each_runs_schedule_when_the_grid_has_several(tmp_path, capsys):
    doc = {"name": "s", "grid": {"N": [2e4], "D": [4e5], "schedules": [{"schedule": "constant"}, {"schedule": "wsd", "cooldown_fraction": 0.1}]}}
    (tmp_path / "s.yaml").write_text(json.dumps(doc))
    assert main(["plan", str(tmp_path / "s.yaml"), "--csv", str(tmp_path / "plan.csv")]) == 0
    assert "┃ schedule ┃" in " ".join(capsys.readouterr().out.split()).replace("┃ ", "┃ ")
    assert pd.read_csv(tmp_path / "plan.csv")["schedule"].tolist() == ["constant", "wsd, 1-sqrt cooldown last 10%"]
