from __future__ import annotations

import pytest
import torch
from torch import nn

from medopt.compress.split_inputs import CompressData
from medopt.compress.engine import compress_model, MeasureSettings
from medopt.compress.measure import split_bacc, torch_predictor
from medopt.compress.quantize import qat_pt2e
from medopt.compress.recipes import RECIPES, RecipeContext
from medopt.config import CompressConfig, TrainConfig
from medopt.registry import UnknownNameError

NAMED = ("fp32-onnx", "prune30", "prune50", "prune30+ft", "prune50+ft", "int8-static", "int8-pt2e",
         "prune50+ft+int8", "prune30+ft+int8", "prune20+int8", "unstructured50")


def test_every_named_recipe_resolves() -> None:
    assert set(NAMED) <= set(RECIPES.names())
    assert all(callable(RECIPES.get(name)) for name in RECIPES.names())


def test_bad_recipe_name_lists_valid_names(tmp_path, trained: nn.Module, data: CompressData,
                                           train_cfg: TrainConfig) -> None:
    with pytest.raises(UnknownNameError, match="prune50\\+ft.*Valid: .*int8-static"):
        RECIPES.get("prune50+fft")
    cfg = CompressConfig(recipes=("int8-statik",))
    with pytest.raises(UnknownNameError, match="Did you mean int8-static"):
        compress_model(trained, data, cfg, train_cfg, workdir=tmp_path)


def _ctx(tmp_path, model: nn.Module, data: CompressData, cfg: CompressConfig, train: TrainConfig) -> RecipeContext:
    return RecipeContext(model, data, cfg, train, tmp_path, 1, split_bacc(torch_predictor(model), data))


def test_prune_ft_int8_recipe(tmp_path, trained: nn.Module, data: CompressData, ccfg: CompressConfig,
                              train_cfg: TrainConfig) -> None:
    before = {k: v.clone() for k, v in trained.state_dict().items()}
    cm = RECIPES.get("prune50+ft+int8")(_ctx(tmp_path, trained, data, ccfg.model_copy(update={"distill": True}),
                                              train_cfg))
    assert cm.kind == "onnx" and cm.path.name == "model.onnx" and cm.ratio == 0.5 and cm.within_budget
    assert cm.params < sum(p.numel() for p in trained.parameters())
    assert cm.file_bytes > 0 and cm.attempts[0]["ratio"] == 0.5
    assert all(torch.equal(before[k], v) for k, v in trained.state_dict().items())  # the fp32 model is untouched


def test_zero_budget_records_every_backoff_attempt(tmp_path, trained: nn.Module, data: CompressData,
                                                   ccfg: CompressConfig, train_cfg: TrainConfig) -> None:
    ctx = _ctx(tmp_path, trained, data, ccfg.model_copy(update={"accuracy_budget": 0.0}), train_cfg)
    ctx.baseline_val_bacc = 1.01  # unreachable: every ratio breaks the budget
    cm = RECIPES.get("prune30")(ctx)
    assert [a["ratio"] for a in cm.attempts] == [0.3, 0.2, 0.1]
    assert not cm.within_budget and cm.ratio == 0.1 and cm.notes


@pytest.mark.slow
def test_qat_pt2e_runs(trained: nn.Module, data: CompressData, ccfg: CompressConfig, train_cfg: TrainConfig) -> None:
    graph = qat_pt2e(trained, torch.randn(2, *data.input_shape), data, train_cfg, ccfg)
    assert 0.0 <= split_bacc(torch_predictor(graph), data) <= 1.0


def test_engine_table_and_best(tmp_path, trained: nn.Module, data: CompressData, ccfg: CompressConfig,
                               train_cfg: TrainConfig) -> None:
    cfg = ccfg.model_copy(update={"recipes": ("fp32-onnx", "int8-pt2e", "unstructured50")})
    out = compress_model(trained, data, cfg, train_cfg, workdir=tmp_path, settings=MeasureSettings(3, 1, (1, 4)))
    names = [r["name"] for r in out.rows]
    assert names == ["fp32-eager", "fp32-ort", "fp32-onnx", "int8-pt2e", "unstructured50"]
    eager, ort = out.rows[0], out.rows[1]
    assert eager["speedup_b1_vs_eager"] == pytest.approx(1.0)
    for row in out.rows[1:]:
        assert row["speedup_b4_vs_ort"] == pytest.approx(ort["latency_b4_ms"] / row["latency_b4_ms"])
        assert row["mcnemar_p"] <= 1.0 and 0.0 <= row["bacc"] <= 1.0
    assert out.rows[2]["size_ratio_vs_onnx"] == pytest.approx(1.0)
    assert out.models["unstructured50"].ratio == 0.5
    fastest = min(out.rows[2:], key=lambda r: r["latency_b1_ms"])["name"]
    assert out.best == fastest


def test_prune_attempts_are_shared_and_int8_cannot_rescue_a_missed_budget(
        tmp_path, trained: nn.Module, data: CompressData, ccfg: CompressConfig, train_cfg: TrainConfig) -> None:
    ctx = _ctx(tmp_path, trained, data, ccfg.model_copy(update={"accuracy_budget": 0.01}), train_cfg)
    for ratio in (0.3, 0.2, 0.1):  # attempts already made by another recipe: a good model scored as a bad one
        ctx._pruned[(ratio, True)] = (trained, ctx.baseline_val_bacc - 0.5)
    cm = RECIPES.get("prune30+ft+int8")(ctx)
    assert [a["ratio"] for a in cm.attempts if "ratio" in a] == [0.3, 0.2, 0.1]
    assert [a["calibration"] for a in cm.attempts if "calibration" in a] == ["minmax"]  # within budget at once
    assert cm.params == sum(p.numel() for p in trained.parameters())  # the cached model, not a fresh pruning
    assert cm.val_bacc >= ctx.baseline_val_bacc - 0.01  # int8 of the unpruned model alone would pass...
    assert not cm.within_budget  # ...but the pruning step missed the budget


def test_int8_calibration_backs_off_and_keeps_the_best(tmp_path, trained: nn.Module, data: CompressData,
                                                       ccfg: CompressConfig, train_cfg: TrainConfig) -> None:
    cfg = ccfg.model_copy(update={"accuracy_budget": 0.0, "calibration_methods": ("minmax", "percentile")})
    ctx = _ctx(tmp_path, trained, data, cfg, train_cfg)
    ctx.baseline_val_bacc = 1.01  # unreachable: every calibration is tried
    cm = RECIPES.get("int8-static")(ctx)
    tried = [(a["calibration"], a["output_correction"]) for a in cm.attempts]
    assert tried == [("minmax", False), ("minmax", True), ("percentile", False), ("percentile", True)]
    assert not cm.within_budget and cm.notes
    assert cm.val_bacc == pytest.approx(max(a["val_bacc"] for a in cm.attempts))
    assert sorted(p.name for p in cm.path.parent.iterdir()) == ["model.onnx"]  # the losers are removed


def test_export_agreement_is_checked_on_validation_images(tmp_path, monkeypatch, trained: nn.Module,
                                                          data: CompressData, ccfg: CompressConfig,
                                                          train_cfg: TrainConfig) -> None:
    from medopt.compress import candidate as recipes  # export_checked lives there

    seen: list[torch.Tensor] = []
    real = recipes.check_onnx_agreement
    monkeypatch.setattr(recipes, "check_onnx_agreement", lambda m, p, x, **kw: (seen.append(x), real(m, p, x, **kw)))
    path = recipes.export_checked(_ctx(tmp_path, trained, data, ccfg, train_cfg), trained, tmp_path / "m.onnx")
    first = next(data.batches("val", chunk=5))
    assert path.exists() and [len(x) for x in seen] == [1, 5]
    assert torch.equal(seen[0], first[:1]) and torch.equal(seen[1], first[:5])  # real images, not noise


def test_prune_int8_backs_off_until_the_int8_model_fits(tmp_path, monkeypatch, trained: nn.Module,
                                                        data: CompressData, ccfg: CompressConfig,
                                                        train_cfg: TrainConfig) -> None:
    from medopt.compress import recipes

    ctx = _ctx(tmp_path, trained, data, ccfg.model_copy(update={"accuracy_budget": 0.01}), train_cfg)
    for ratio in (0.3, 0.2, 0.1):  # every pruned fp32 model fits the budget...
        ctx._pruned[(ratio, True)] = (trained, ctx.baseline_val_bacc)
    int8_bacc = {"ratio30": ctx.baseline_val_bacc - 0.05, "ratio20": ctx.baseline_val_bacc - 0.005}

    def fake_int8(_ctx, _model, folder):  # ...but int8 costs 5 points at 30% and half a point at 20%
        folder.mkdir(parents=True, exist_ok=True)
        (folder / "model.onnx").write_bytes(recipes.export_checked(ctx, trained, folder / "real.onnx").read_bytes())
        return folder / "model.onnx", int8_bacc[folder.name], [{"calibration": "minmax", "val_bacc": 0.0}]

    monkeypatch.setattr(recipes, "_quantized_pruned", fake_int8)
    cm = RECIPES.get("prune30+ft+int8")(ctx)
    assert cm.ratio == 0.2 and cm.within_budget and not cm.notes
    assert [a["ratio"] for a in cm.attempts if "ratio" in a] == [0.3, 0.2]  # 10% never needed
    assert len([a for a in cm.attempts if "calibration" in a]) == 2  # int8 tried at 30% and at 20%
    assert cm.path == ctx.recipe_dir("prune30+ft+int8") / "model.onnx" and cm.path.exists()
