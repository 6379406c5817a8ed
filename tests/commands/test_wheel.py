"""dilnas as a user gets it from a wheel: built from this checkout, installed into a fresh virtual environment,
run from a directory that has nothing to do with the repository."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import sysconfig
import venv
from pathlib import Path

import pytest

from tests.helpers import REPO

SKIP = shutil.ignore_patterns(
    ".git", "build", "dist", "runs", "*.egg-info", "__pycache__", ".*cache", ".venv"
)


def run(*args: str | Path, cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run([str(a) for a in args], cwd=cwd, capture_output=True, text=True, timeout=600)


@pytest.fixture(scope="module")
def installed(tmp_path_factory) -> Path:
    """The bin/ folder of a fresh venv holding dilnas from a wheel (its dependencies are this interpreter's,
    seen through a .pth file, so the development install's import hook stays out)."""
    root = tmp_path_factory.mktemp("wheel")
    source = root / "source"
    shutil.copytree(REPO, source, symlinks=True, ignore=SKIP)
    built = run(
        sys.executable,
        "-m",
        "pip",
        "wheel",
        "--no-deps",
        "--no-build-isolation",
        "-w",
        root,
        source,
        cwd=root,
    )
    assert built.returncode == 0, built.stderr
    (wheel,) = root.glob("dilnas-*.whl")
    env_dir = root / "venv"
    venv.create(env_dir, with_pip=False)
    python = env_dir / "bin" / "python"
    purelib = run(python, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])", cwd=root)
    base = {sysconfig.get_paths()["purelib"], sysconfig.get_paths()["platlib"]}
    Path(purelib.stdout.strip(), "base_env.pth").write_text("\n".join(sorted(base)) + "\n")
    install = run(
        sys.executable, "-m", "pip", "--python", python, "install", "--no-deps", "--no-index", wheel, cwd=root
    )
    assert install.returncode == 0, install.stderr
    return env_dir / "bin"


@pytest.mark.slow
def test_wheel_holds_configs_spaces_and_paper_archs(installed, tmp_path):
    where = run(
        installed / "python",
        "-c",
        "import dilnas, pathlib; print(pathlib.Path(dilnas.__file__).parent)",
        cwd=tmp_path,
    )
    package = Path(where.stdout.strip())
    assert package.is_relative_to(installed.parent), package  # the wheel's copy, not the checkout
    assert not package.joinpath("conf").is_symlink()
    shipped = {
        p.relative_to(package).as_posix() for p in package.rglob("*") if p.suffix in (".yaml", ".json")
    }
    in_repo = {f"conf/{p.relative_to(REPO / 'conf').as_posix()}" for p in (REPO / "conf").rglob("*.yaml")}
    assert in_repo <= shipped
    assert {"search_spaces/synthetic_tiny.yaml", "search_spaces/regseg_exp48.yaml"} <= shipped
    assert {"archs/exp48_decoder26.json", "archs/exp53_decoder29.json"} <= shipped
    synthetic = {f"archs_synthetic/{p.name}" for p in (REPO / "experiments" / "synthetic").glob("*.json")}
    camvid = {
        f"archs_camvid/{p.name}" for p in (REPO / "experiments" / "camvid" / "reference").glob("*.json")
    }
    assert synthetic and camvid and synthetic | camvid <= shipped
    assert list(installed.parent.glob("lib/python*/site-packages/dilnas-*.dist-info/licenses/LICENSE"))


@pytest.mark.slow
def test_wheel_commands_run_from_any_directory(installed, tmp_path):
    info = run(installed / "dilnas-info", "arch=exp48_decoder26", "format=json", cwd=tmp_path)
    assert info.returncode == 0, info.stderr
    assert json.loads(info.stdout)["field_of_view"] == 3807
    # The README's synthetic examples name their architectures; the wheel has them too.
    short = run(installed / "dilnas-info", "arch=tiny_short_dilated", "format=json", cwd=tmp_path)
    assert short.returncode == 0, short.stderr
    assert json.loads(short.stdout)["field_of_view"] == 239

    space = run(installed / "dilnas-search", "search.space=synthetic_deep", "--cfg", "job", cwd=tmp_path)
    assert space.returncode == 0, space.stderr
    assert "space: synthetic_deep" in space.stdout

    run_dir = tmp_path / "search"
    search = run(
        installed / "dilnas-search",
        "data.image_size=64",
        "data.context_distance=8",
        "data.train_samples=32",
        "data.val_samples=8",
        "trainer.batch_size=8",
        "trainer.epochs=2",
        "search.warmup_epochs=1",
        "device=cpu",
        f"hydra.run.dir={run_dir}",
        cwd=tmp_path,
    )
    assert search.returncode == 0, search.stderr
    assert (run_dir / "arch.json").is_file()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["search"]  # nothing written outside the run
