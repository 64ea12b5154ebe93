"""Registries run by a container engine (docker, podman, compose): found and read through the engine.

inspect.py parses what the engine says about a container, registry_env.py applies
its REGISTRY_* variables as the registry does, resolve.py turns an instance that
names a container into one whose vars are the engine host's paths and whose
commands go through the engine (restart, exec of the GC).
"""
