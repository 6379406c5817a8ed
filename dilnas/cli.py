"""What every dilnas command shares: Hydra wiring and one-line user errors.

Entry points stay thin: they turn the composed config into a typed dataclass (``typed_config``) and call
library functions. A ``UserError`` anywhere below becomes ``<command>: error: <message>`` on stderr and
exit status 2, without a traceback.
"""

from __future__ import annotations

import functools
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import hydra
from omegaconf import DictConfig, OmegaConf
from omegaconf.errors import MissingMandatoryValue, OmegaConfBaseException

from dilnas.errors import UserError

CONF_DIR = str(Path(__file__).resolve().parent.parent / "conf")
T = TypeVar("T")


def fail(program: str, error: BaseException) -> None:
    print(f"{program}: error: {error}", file=sys.stderr)
    sys.exit(2)


def hydra_command(program: str, config_name: str, task: Callable[[DictConfig], Any]) -> Callable[[], Any]:
    """A Hydra ``main`` reading ``conf/<config_name>.yaml`` whose user errors exit 2 with one line."""

    @functools.wraps(task)
    def guarded(cfg: DictConfig) -> Any:
        try:
            return task(cfg)
        except UserError as error:
            fail(program, error)

    return hydra.main(version_base="1.3", config_path=CONF_DIR, config_name=config_name)(guarded)


def typed_config(cfg: DictConfig, schema: type[T]) -> T:
    """Validate a composed config against its dataclass schema and return the dataclass.

    Compose already checks types and keys; this catches what slips past it (``???`` values left unset).
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
    return obj
