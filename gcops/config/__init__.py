"""Configuration: load the TOML file, check it against the schema (every problem at once), give typed objects."""

from gcops.config.load import find_config_path, load_config
from gcops.config.model import Config, ConfigError, ContainerRef, Hooks, Instance, RetentionRule, Settings
from gcops.config.keys import parse_duration

__all__ = [
    "Config",
    "ConfigError",
    "ContainerRef",
    "Hooks",
    "Instance",
    "RetentionRule",
    "Settings",
    "find_config_path",
    "load_config",
    "parse_duration",
]
