"""Built-in playbooks (data): one TOML file per kind of deployment."""
