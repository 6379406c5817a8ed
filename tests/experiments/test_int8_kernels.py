"""experiments/camvid/int8_kernels.py: onnxruntime's kernel time per kind of convolution, float against INT8."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from tests.helpers import ENV, REPO

SCRIPT = REPO / "experiments" / "camvid" / "int8_kernels.py"


@pytest.mark.slow
def test_every_convolution_is_classified_and_the_table_is_the_files(tmp_path):
    out = tmp_path / "kernels.json"
    done = subprocess.run(
        [sys.executable, SCRIPT, "--size", "64", "128", "--runs", "1", "--threads", "1", "--json", out],
        cwd=REPO,
        env=ENV,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    kernels = json.loads(out.read_text())["kernel_ms"]
    # exp48 has all four kinds, each in both models (a convolution the optimized graph does not name fails)
    for kind in ("1x1", "dense 3x3 (stem, decoder)", "grouped 3x3", "squeeze-excitation 1x1"):
        assert kernels["float"][f"conv: {kind}"] > 0 and kernels["int8"][f"conv: {kind}"] > 0, kind
    assert "QuantizeLinear" in kernels["int8"] and "QuantizeLinear" not in kernels["float"]
    assert "ReduceMean" in kernels["float"] and "ReduceMean" not in kernels["int8"]  # the SE mean as a pool
    total = next(line for line in done.stdout.splitlines() if line.startswith("all kernels"))
    assert total.split()[2:4] == [f"{sum(kernels[m].values()):.1f}" for m in ("float", "int8")]
