"""One instance's maintenance cycle (cycle.py), read top-down:

    connect -> preflight -> measure -> prepare (writes still accepted) ->
    window: every node entered and verified, the steps and the collector on the
    GC node, every node left last-in-first-out, each once -> measure -> result

node.py holds what is done to one node (enter, verify, leave), window.py the
context manager that guarantees every entered node is left, in_window.py the
one protocol of what runs inside it (deadline, lock, figures), collect.py and
concurrent.py what runs there (the registry's GC, the concurrent sweep, the
untagged removal).
"""
from gcops.maintenance.cycle import InstanceCycle, RunOptions
from gcops.maintenance.node import gc_command, ssh_settings

__all__ = ["InstanceCycle", "RunOptions", "gc_command", "ssh_settings"]
