"""Run configurations: YAML in, a typed and validated :class:`RunConfig` out.

Three modules, one job each:

* :mod:`.schema`: the sections (model, task, data, val, train, gan, log, checkpoint), their keys and types,
  as pydantic models, and validation with errors in one line (an unknown key names the valid ones);
* :mod:`.loading`: YAML files and shipped recipes, ``base:``, ``--set section.key=value`` overrides, and
  old configs' layout (the GAN stage's settings once in ``train``);
* :mod:`.rules`: what must hold beyond types: ranges, and values that must agree across sections.

Rules, so that a typo never becomes a silent default: unknown keys are errors naming the key and the valid
ones; values must have the declared type (an int where a float is expected is fine, and so is a numeric
string for a float, because PyYAML reads ``2e-4`` as a string); overrides are validated exactly like the file.
"""

from ...precision import Precision
from .loading import (
    DATA_ROOT_ENV,
    MOVED_TO_GAN,
    apply_overrides,
    load_config,
    moved_gan_keys,
    parse_config,
    recipe_names,
    recipes_dir,
)
from .rules import check_rules
from .schema import (
    REAL_ESRGAN_PERCEPTUAL_LAYERS,
    SECTIONS,
    CheckpointConfig,
    DataConfig,
    GanConfig,
    LogConfig,
    RunConfig,
    Stage,
    TaskConfig,
    TrainSection,
    ValConfig,
)

__all__ = [
    "DATA_ROOT_ENV", "MOVED_TO_GAN", "REAL_ESRGAN_PERCEPTUAL_LAYERS", "SECTIONS", "CheckpointConfig", "DataConfig",
    "GanConfig", "LogConfig", "Precision", "RunConfig", "Stage", "TaskConfig", "TrainSection", "ValConfig",
    "apply_overrides", "check_rules", "load_config", "moved_gan_keys", "parse_config", "recipe_names", "recipes_dir",
]
