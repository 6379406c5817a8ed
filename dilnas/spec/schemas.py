"""Every command's schema, for Hydra's ConfigStore (``dilnas.cli.register_schemas``)."""

from __future__ import annotations

from dilnas.spec.options import ExportConfig, RetrainConfig, SearchRunConfig
from dilnas.spec.tool_options import (
    BenchDataConfig,
    BenchInferConfig,
    BenchSearchConfig,
    DeployConfig,
    GridConfig,
    InfoConfig,
    PlotConfig,
    PredictConfig,
    RankConfig,
    ReportConfig,
)

# (name, group, schema) for Hydra's ConfigStore: primary configs name their schema first in their defaults
# list (``- search_run_schema``); a group option (conf/data/*.yaml) merges into its typed section of it, so
# compose checks it there, and no schema shows up among a group's options or in tab completion.
SCHEMAS: tuple[tuple[str, str | None, type], ...] = (
    ("info_schema", None, InfoConfig),
    ("bench_infer_schema", None, BenchInferConfig),
    ("bench_search_schema", None, BenchSearchConfig),
    ("bench_data_schema", None, BenchDataConfig),
    ("retrain_schema", None, RetrainConfig),
    ("search_run_schema", None, SearchRunConfig),
    ("export_schema", None, ExportConfig),
    ("predict_schema", None, PredictConfig),
    ("deploy_schema", None, DeployConfig),
    ("plot_schema", None, PlotConfig),
    ("report_schema", None, ReportConfig),
    ("grid_schema", None, GridConfig),
    ("rank_schema", None, RankConfig),
)
