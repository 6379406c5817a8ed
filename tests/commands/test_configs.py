"""Every primary config and every experiment preset composes and validates against its schema."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest
from hydra import compose, initialize_config_dir
from hydra.core.global_hydra import GlobalHydra
from hydra.errors import CompactHydraException
from omegaconf import OmegaConf

from dilnas.cli import CONF_DIR, one_line_hydra_error, register_schemas, typed_config
from dilnas.spec import options as schemas
from dilnas.spec import tool_options as tools

PRIMARY = {
    "info": (tools.InfoConfig, ["arch=x.json"]),
    "bench_infer": (tools.BenchInferConfig, ["arch=x.json"]),
    "bench_search": (tools.BenchSearchConfig, []),
    "bench_data": (tools.BenchDataConfig, []),
    "retrain": (schemas.RetrainConfig, ["arch=x.json"]),
    "search": (schemas.SearchRunConfig, []),
    "export": (schemas.ExportConfig, ["run_dir=r"]),
    "predict": (tools.PredictConfig, ["arch=x.json", "checkpoint=c.pt", "images=i", "out=o"]),
    "deploy": (tools.DeployConfig, ["arch=x.json", "out=o.onnx"]),
    "plot": (tools.PlotConfig, ["run_dir=r"]),
    "report": (tools.ReportConfig, ["sweep_dir=s"]),
    "grid": (tools.GridConfig, ["out=o"]),
}
EXPERIMENTS = sorted(p.stem for p in (Path(CONF_DIR) / "experiment").glob("*.yaml"))


@pytest.fixture(autouse=True)
def hydra_conf():
    register_schemas()
    GlobalHydra.instance().clear()
    with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
        yield
    GlobalHydra.instance().clear()


@pytest.mark.parametrize("name", sorted(PRIMARY))
def test_primary_configs_compose(name):
    schema, overrides = PRIMARY[name]
    assert isinstance(typed_config(compose(config_name=name, overrides=overrides), schema), schema)


@pytest.mark.parametrize("data", ["synthetic", "cityscapes", "camvid", "folder"])
def test_data_configs_compose(data):
    cfg = compose(config_name="retrain", overrides=["arch=x.json", f"data={data}", "data.root=/data"])
    assert OmegaConf.to_object(cfg).data.name.value == data


@pytest.mark.parametrize("experiment", EXPERIMENTS)
def test_experiment_presets_compose(experiment):
    # A search preset (named *_search) is for dilnas-search; every other one for dilnas-retrain.
    name, schema = (
        ("search", schemas.SearchRunConfig)
        if experiment.endswith("_search")
        else ("retrain", schemas.RetrainConfig)
    )
    cfg = compose(
        config_name=name, overrides=[*PRIMARY[name][1], "data.root=/data", f"+experiment={experiment}"]
    )
    assert isinstance(typed_config(cfg, schema), schema)


def test_camvid_lite_presets_search_and_retrain_alike():
    overrides = ["data.root=/data", "+experiment=camvid_lite"]
    retrain = typed_config(compose("retrain", ["arch=x.json", *overrides]), schemas.RetrainConfig)
    search = typed_config(
        compose("search", [*overrides[:1], "+experiment=camvid_lite_search"]), schemas.SearchRunConfig
    )
    assert search.search.space == "camvid_lite"
    # The same data, but for the evaluation: the ground truth at native resolution (where architectures differ
    # by more than their seeds), the search's held-out scores at the training resolution (cheaper).
    assert (retrain.data.eval_short_side, search.data.eval_short_side) == (None, 192)
    assert dataclasses.replace(search.data, eval_short_side=None) == retrain.data
    assert (retrain.data.train_split, retrain.data.eval_split, retrain.data.crop_size) == (
        "train",
        "val",
        [192, 256],
    )


def test_paper_recipe_defaults():
    config = OmegaConf.to_object(
        compose(config_name="retrain", overrides=["arch=x.json", "+experiment=cityscapes"])
    )
    assert (config.optim.lr, config.optim.momentum, config.optim.weight_decay) == (0.05, 0.9, 1e-4)
    assert (config.optim.warmup_steps, config.optim.warmup_factor, config.optim.poly_power) == (
        3000,
        0.1,
        0.9,
    )
    assert (config.trainer.batch_size, config.trainer.epochs) == (8, 1000)
    assert config.data.scale_range == [400, 1600] and config.data.crop_size == [768, 768]
    camvid = OmegaConf.to_object(
        compose(config_name="retrain", overrides=["arch=x.json", "+experiment=camvid_finetune"])
    )
    assert (camvid.optim.lr, camvid.trainer.batch_size, camvid.trainer.epochs) == (0.005, 12, 200)
    assert camvid.data.crop_size == [720, 960] and camvid.data.train_split == "trainval"


def test_class_uniform_and_randaug_in_the_cityscapes_presets_only():
    """The official 1000-epoch Cityscapes configuration: RandAugment "reduced" and class_uniform_pct 0.5; the
    CamVid preset and a plain data group keep the defaults (none, 0), so a search's fixed images stay fixed."""
    assert (schemas.DataConfig().augment, schemas.DataConfig().class_uniform_pct) == (
        schemas.Augment.none,
        0.0,
    )
    for experiment in ("cityscapes", "cityscapes_best"):
        config = OmegaConf.to_object(
            compose(config_name="retrain", overrides=["arch=x.json", f"+experiment={experiment}"])
        )
        assert config.data.augment is schemas.Augment.randaug_reduced, experiment
        assert config.data.class_uniform_pct == 0.5, experiment
    for overrides in (["+experiment=camvid_finetune"], ["data=cityscapes"], ["data=camvid"]):
        config = OmegaConf.to_object(compose(config_name="retrain", overrides=["arch=x.json", *overrides]))
        assert (config.data.augment, config.data.class_uniform_pct) == (schemas.Augment.none, 0.0), overrides
    search = OmegaConf.to_object(compose(config_name="search", overrides=["data=cityscapes"]))
    assert search.data.class_uniform_pct == 0.0


@pytest.mark.parametrize(
    "override, expected",
    [
        ("data.augment=randaug_full", "expected one of [none, randaug_reduced]"),
        ("data.class_uniform_pct=half", "data.class_uniform_pct"),
    ],
)
def test_class_uniform_and_randaug_values_are_checked_at_compose(override, expected):
    """What the command prints, on one line (the range of class_uniform_pct: tests/data/test_class_uniform)."""
    with pytest.raises(CompactHydraException) as info:
        compose(config_name="retrain", overrides=["arch=x.json", override])
    message = one_line_hydra_error(info.value)
    assert expected in message and "\n" not in message, message


def test_unknown_key_is_refused_at_compose():
    with pytest.raises(Exception, match=r"trainer\.epochz"):
        compose(config_name="retrain", overrides=["arch=x.json", "trainer.epochz=3"])


def test_retrain_defaults_run_on_the_synthetic_data_in_minutes():
    config = OmegaConf.to_object(compose(config_name="retrain", overrides=["arch=x.json"]))
    assert config.data.name.value == "synthetic" and config.trainer.max_steps == 600


@pytest.mark.parametrize(
    "overrides, target",
    [
        (
            ["hydra/launcher=local_parallel"],
            "hydra_plugins.hydra_joblib_launcher.joblib_launcher.JoblibLauncher",
        ),
        (["+experiment=slurm"], "hydra_plugins.hydra_submitit_launcher.submitit_launcher.SlurmLauncher"),
        (["hydra/sweeper=optuna_miou"], "hydra_plugins.hydra_optuna_sweeper.optuna_sweeper.OptunaSweeper"),
    ],
)
def test_launcher_and_sweeper_presets_compose(overrides, target):
    cfg = compose(config_name="search", overrides=overrides, return_hydra_config=True)
    node = cfg.hydra.sweeper if "sweeper" in target else cfg.hydra.launcher
    assert node._target_ == target
    if "slurm" in overrides[0]:
        assert cfg.resume is True and cfg.hydra.launcher.max_num_timeout == 5
    if "sweeper" in target:
        assert cfg.hydra.sweeper.direction == "maximize"


def test_group_yaml_agrees_with_its_dataclass():
    """One default per setting: the dataclass holds it. A group's default option restates nothing, and the
    synthetic data's defaults are the same in the data schema, the data set's own config and the YAML."""
    search = OmegaConf.load(Path(CONF_DIR) / "search" / "default.yaml")
    assert len(search) == 0, "search/default.yaml restates SearchConfig's defaults"
    from dilnas.data.synthetic import SyntheticConfig

    data, synthetic = schemas.DataConfig(), SyntheticConfig()
    yaml = OmegaConf.load(Path(CONF_DIR) / "data" / "synthetic.yaml")
    for key, field in [
        ("image_size", "image_size"),
        ("context_distance", "context_distance"),
        ("frames_per_image", "frames_per_image"),
        ("train_samples", "num_samples"),
        ("val_samples", "val_samples"),
        ("test_samples", "test_samples"),
        ("seed", "seed"),
    ]:
        assert getattr(data, key) == getattr(synthetic, field), key
        assert yaml.get(key, getattr(data, key)) == getattr(data, key), key
    composed = OmegaConf.to_object(compose(config_name="search"))
    assert composed.search == schemas.SearchConfig()


def test_read_only_commands_share_one_hydra_preset():
    for name in (
        "info",
        "bench_infer",
        "bench_search",
        "bench_data",
        "export",
        "predict",
        "deploy",
        "plot",
        "report",
        "grid",
    ):
        text = (Path(CONF_DIR) / f"{name}.yaml").read_text()
        assert "- hydra/read_only" in text and "output_subdir" not in text, name


GROUP_SCHEMAS = {
    "data": schemas.DataConfig,
    "optim": schemas.OptimConfig,
    "trainer": schemas.TrainerConfig,
    "search": schemas.SearchConfig,
}


@pytest.mark.parametrize(
    "path",
    sorted(p for group in GROUP_SCHEMAS for p in (Path(CONF_DIR) / group).glob("*.yaml")),
    ids=lambda p: f"{p.parent.name}/{p.name}",
)
def test_every_group_yaml_agrees_with_its_dataclass(path):
    """Every key of a group option is a field of its schema, with a value of the field's type (compose checks
    it too: the option merges into its section of the command's schema)."""
    node = OmegaConf.load(path)
    assert "defaults" not in node, path  # no schema of its own: none appears among the group's options
    OmegaConf.merge(
        OmegaConf.structured(GROUP_SCHEMAS[path.parent.name]), node
    )  # raises on a bad key or type
