"""What every dilnas command shares: Hydra wiring and one-line user errors.

Entry points stay thin: they turn the composed config into a typed dataclass (``typed_config``) and call
library functions. A ``UserError`` anywhere below becomes ``<command>: error: <message>`` on stderr and
exit status 2, without a traceback; a run stopped by a signal after saving its checkpoint
(``Interrupted``: SIGINT, SIGTERM, SIGUSR2) says so in one line and exits 128 + the signal number.
"""

from __future__ import annotations

import dataclasses
import difflib
import functools
import logging
import os
import re
import signal
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, TypeVar

import hydra
import yaml
from hydra.core.config_store import ConfigStore
from hydra.core.hydra_config import HydraConfig
from hydra.errors import CompactHydraException, MissingConfigException, OverrideParseException
from omegaconf import DictConfig, OmegaConf
from omegaconf.errors import MissingMandatoryValue, OmegaConfBaseException

from dilnas import __version__
from dilnas.command_help import SCHEMA_SUFFIX, command_help
from dilnas.spec.schemas import SCHEMAS
from dilnas.spec.settings import check_settings
from dilnas.spec.shipped import CONF_DIR
from dilnas.utils.errors import Interrupted, UserError, one_line, os_reason
from dilnas.utils.files import remove_unused_dir

T = TypeVar("T")
log = logging.getLogger("dilnas")


def register_resolvers() -> None:
    """``${dilnas_stem:PATH}``: a file name without its folder and suffix (dilnas-grid names run directories
    after their architecture file with it)."""
    OmegaConf.register_new_resolver("dilnas_stem", lambda path: Path(str(path)).stem, replace=True)


def register_schemas() -> None:
    """Put the dataclass schemas (``dilnas.spec.schemas.SCHEMAS``) into Hydra's ConfigStore (idempotent)."""
    store = ConfigStore.instance()
    for name, group, node in SCHEMAS:
        store.store(name=name, group=group, node=node)


def fail(program: str, error: BaseException | str) -> None:
    print(f"{program}: error: {error}", file=sys.stderr)
    sys.exit(2)


def hydra_command(
    program: str, config_name: str, task: Callable[[DictConfig], Any], examples: Sequence[str] = ()
) -> Callable[[], Any]:
    """A Hydra ``main`` reading ``conf/<config_name>.yaml`` whose user errors exit 2 with one line.

    User errors are ours (``UserError``) and Hydra's own for a bad override or an unknown config name, which
    Hydra would print over several lines. ``HYDRA_FULL_ERROR=1`` set by the user keeps Hydra's full report.
    """

    @functools.wraps(task)
    def guarded(cfg: DictConfig) -> Any:
        try:
            return task(cfg)
        except UserError as error:
            discard_unused_run_dir()
            fail(program, one_line(error))
        except Interrupted as error:
            print(f"{program}: {error}", file=sys.stderr)
            sys.exit(error.exit_status)
        except KeyboardInterrupt:  # Ctrl-C outside a training loop (which saves and stops cleanly itself)
            discard_unused_run_dir()
            print(
                f"{program}: stopped by SIGINT outside the training loop; the last checkpoint, if any, is kept",
                file=sys.stderr,
            )
            sys.exit(128 + signal.SIGINT)
        except BrokenPipeError:  # caught here too, or Hydra would log a failed job first
            quiet_exit_on_closed_stdout()

    register_schemas()
    register_resolvers()
    hydra_main = hydra.main(version_base="1.3", config_path=str(CONF_DIR), config_name=config_name)(guarded)

    def main() -> Any:
        flags = set(sys.argv[1:])
        if "--version" in flags:
            print(f"{program} (dilnas) {__version__}")
            sys.exit(0)
        if flags & {"--help", "-h"}:
            try:
                print(command_help(program, config_name, examples))
            except BrokenPipeError:
                quiet_exit_on_closed_stdout()
            sys.exit(0)
        if flags & {"--cfg", "-c"} and flags & {"-m", "--multirun"}:
            fail(
                program,
                "--cfg prints one job's config and cannot be combined with -m: drop -m, keep the overrides",
            )
        sys.argv[1:] = with_recorded_overrides(sys.argv[1:])
        full_report = os.environ.get("HYDRA_FULL_ERROR") == "1"
        os.environ["HYDRA_FULL_ERROR"] = "1"  # Hydra raises instead of printing, and we word the error
        try:
            return hydra_main()
        except CompactHydraException as error:
            if full_report:
                raise
            fail(program, one_line_hydra_error(error))
        except BrokenPipeError:  # e.g. `--help | head`: Hydra prints help and --cfg outside the task
            quiet_exit_on_closed_stdout()
        except OSError as error:  # Hydra creating the run directory, its .hydra/ or its log file
            if full_report or error.filename is None:
                raise
            fail(
                program,
                f"{error.filename}: {os_reason(error)}: choose another hydra.run.dir (or hydra.sweep.dir)",
            )

    return main


def with_recorded_overrides(arguments: list[str]) -> list[str]:
    """``resume=true hydra.run.dir=RUN`` alone continues a run: the overrides the run recorded
    (``RUN/.hydra/overrides.yaml``) come first, and every override given now replaces the recorded one of the
    same key (the run then still refuses settings that differ from its own). Anything else is left as it is."""
    given = {argument.split("=", 1)[0].lstrip("+~"): argument for argument in arguments if "=" in argument}
    run_dir = given.get("hydra.run.dir")
    if given.get("resume") != "resume=true" or run_dir is None or {"-m", "--multirun"} & set(arguments):
        return arguments
    recorded_file = Path(run_dir.split("=", 1)[1]) / ".hydra" / "overrides.yaml"
    try:
        recorded = yaml.safe_load(recorded_file.read_text(encoding="utf-8")) or []
    except (OSError, yaml.YAMLError):
        return arguments  # a run without recorded overrides: the command line alone, as before
    if not isinstance(recorded, list):
        return arguments
    kept = [str(item) for item in recorded if str(item).split("=", 1)[0].lstrip("+~") not in given]
    return [*kept, *arguments]


def quiet_exit_on_closed_stdout() -> None:
    """The reader of our output went away (`dilnas-info ... | head`): stop quietly, as Unix tools do."""
    os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())  # no second error when Python flushes
    sys.exit(1)


def hydra_run(cfg: DictConfig) -> tuple[Path, str, list[str]]:
    """The job's run directory, its composed config as YAML and the command line's overrides: what a run
    records about the command that started it."""
    hydra_config = HydraConfig.get()
    return Path(hydra_config.runtime.output_dir), OmegaConf.to_yaml(cfg), list(hydra_config.overrides.task)


def discard_unused_run_dir() -> None:
    """Remove the run directory of a command that failed before writing anything into it.

    Hydra creates it (with ``.hydra/`` and ``<job>.log``) before the command starts; a run that stopped on
    bad input should not leave it behind. A directory holding anything else is left as it is, and so is the
    working directory of the read-only commands; only rank 0 removes it.
    """
    hydra_config = HydraConfig.get()
    if os.environ.get("RANK", "0") != "0":
        return
    run_dir, job_log = Path(hydra_config.runtime.output_dir), f"{hydra_config.job.name}.log"
    remove_unused_dir(run_dir, {hydra_config.output_subdir, job_log})
    # In a directory that holds other work (another run's), the job's empty log is all this run added.
    log_file = run_dir / job_log
    if run_dir.resolve() != Path.cwd().resolve() and log_file.is_file() and log_file.stat().st_size == 0:
        log_file.unlink()


def one_line_hydra_error(error: CompactHydraException) -> str:
    """Hydra's message for a bad override or config name, on one line (with the allowed names, if any, the
    closest setting to a misspelled key, and the ``+`` an optional preset group needs)."""
    lines = [line.strip() for line in str(error).splitlines() if line.strip()]
    message = lines[0].rstrip(".") if lines else type(error).__name__
    if isinstance(error, OverrideParseException):
        return f"override {error.override!r}: {message}"
    if isinstance(error.__cause__, OmegaConfBaseException):
        cause = str(error.__cause__.msg).splitlines()[0]
        message += f": {cause}"
        unknown = re.fullmatch(r"Key '(\w+)' not in '(\w+)'", cause)
        if unknown:
            message += did_you_mean(unknown[1], unknown[2])
    if isinstance(error, MissingConfigException) and error.options:
        choices = [option for option in error.options if not option.endswith(SCHEMA_SUFFIX)]
        message += f"; choose one of: {', '.join(choices)}"
    group = re.fullmatch(r"Could not override '(\w+)'\. No match in the defaults list", message)
    if group and (CONF_DIR / group[1]).is_dir():
        message += f"; {group[1]} is an optional preset: add it with a '+', as in +{group[1]}=NAME"
    return message


def did_you_mean(key: str, schema_name: str) -> str:
    """``; did you mean 'batch_size'?`` when the dataclass ``schema_name`` has a setting close to ``key``."""
    schema = _schemas_by_name().get(schema_name)
    if schema is None:
        return ""
    close = difflib.get_close_matches(key, [f.name for f in dataclasses.fields(schema)], n=1, cutoff=0.6)
    return f"; did you mean {close[0]!r}?" if close else ""


def _schemas_by_name() -> dict[str, type]:
    found: dict[str, type] = {}
    pending = [schema for _, _, schema in SCHEMAS]
    while pending:
        schema = pending.pop()
        found[schema.__name__] = schema
        for item in dataclasses.fields(schema):
            factory = item.default_factory
            if isinstance(factory, type) and dataclasses.is_dataclass(factory):  # a nested section
                pending.append(factory)
    return found


def typed_config(cfg: DictConfig, schema: type[T]) -> T:
    """Validate a composed config against its dataclass schema and return the dataclass.

    Compose already checks types and keys; this catches what slips past it (``???`` values left unset, keys
    added with ``+`` that no schema declares) and refuses values out of their setting's range.
    """
    try:
        obj = OmegaConf.to_object(cfg)
    except MissingMandatoryValue as error:
        key = error.full_key or "?"
        raise UserError(f"missing required value {key!r}: pass it as {key}=...") from None
    except OmegaConfBaseException as error:
        raise UserError(f"invalid config value at {error.full_key!r}: {error.msg}") from None
    if not isinstance(obj, schema):
        raise UserError(f"config does not match {schema.__name__}")
    unknown = unknown_keys(cfg)
    if unknown:
        *section, key = unknown[0].split(".")
        parent = OmegaConf.select(cfg, ".".join(section)) if section else cfg
        parent_type = OmegaConf.get_type(parent) if isinstance(parent, DictConfig) else None
        hint = did_you_mean(key, parent_type.__name__) if parent_type is not None else ""
        raise UserError(
            f"unknown config key {unknown[0]!r} (added with '+'?): not a setting of this command{hint}"
        )
    check_settings(obj)
    return obj


def unknown_keys(node: DictConfig, prefix: str = "") -> list[str]:
    """Keys that a ``+key=value`` override added but no dataclass schema declares (Hydra accepts them and
    ``OmegaConf.to_object`` drops them silently, so a typo would go unnoticed)."""
    object_type = OmegaConf.get_type(node)
    fields = (
        {f.name for f in dataclasses.fields(object_type)} if dataclasses.is_dataclass(object_type) else None
    )
    found = []
    for key in node:
        path = f"{prefix}{key!s}"
        if fields is not None and key not in fields:
            found.append(path)
            continue
        if not OmegaConf.is_missing(node, key) and isinstance(child := node[key], DictConfig):
            found += unknown_keys(child, f"{path}.")
    return found
