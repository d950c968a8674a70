"""Configuration: the validated, frozen dataclasses every layer is built from.

This package sits below everything else of simscale and imports none of it, so the model, the
scenario runners, the hub and the load generator can all depend on it without a cycle.
"""

from simscale.config.scenario import Scenario, describe_fields, parse_field_value

__all__ = ["Scenario", "describe_fields", "parse_field_value"]
