import json
import math

from scalinglab import planner, spec
from scalinglab.train import train


def test_a_few_training_steps_lower_the_validation_loss(tmp_path):
    sweep = spec.parse(
        {
            "name": "t",
            "data": {"val_tokens": 2048},
            "model": {"seq_len": 32},
            "grid": {"shapes": [{"n_layers": 1, "d_model": 32, "n_heads": 2}], "D": [4 * 32 * 60]},
            "train": {"batch_size": 4, "lr": 1e-2, "n_evals": 3},
        }
    )
    run = planner.plan(sweep)[0]
    summary = train(run, tmp_path, log=lambda _: None)
    metrics = [json.loads(line) for line in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    assert [m["step"] for m in metrics] == [20, 40, 60]
    assert summary["status"] == "done"
    assert summary["L"] == metrics[-1]["L"] < metrics[0]["L"] < math.log(256)  # below uniform guessing
    assert summary["bpb"] == summary["L"] / math.log(2)
    assert summary["tokens_per_s"] > 0
    assert json.loads((tmp_path / "summary.json").read_text()) == summary
