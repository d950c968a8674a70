"""Configuration: the validated, frozen dataclasses every layer is built from.

This package sits below everything else of simscale and imports none of it, so the model, the
scenario runners, the hub and the load generator can all depend on it without a cycle. Every
settings class declares its fields with :func:`setting` (limits, unit, section, source, help) and
checks them with :func:`validate_fields`.
"""

from simscale.config.fields import describe, setting, validate_fields
from simscale.config.scenario import SECTIONS, Scenario, describe_fields, parse_field_value

__all__ = ["SECTIONS", "Scenario", "describe", "describe_fields", "parse_field_value", "setting", "validate_fields"]
