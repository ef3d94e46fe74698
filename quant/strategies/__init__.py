"""Strategy plugin interface, registry, YAML configs and the built-in strategies."""
