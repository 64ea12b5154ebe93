"""The one error model: every exception gcops defines is a GcopsError of one kind."""
from __future__ import annotations

import importlib
import inspect
import pkgutil

import gcops
from gcops import errors

KINDS = (errors.UsageError, errors.Refused, errors.HostError, errors.ParseError, errors.StateError,
         errors.WindowFailed, errors.Cancelled)


def test_every_exception_class_of_gcops_is_one_kind_of_gcops_error():
    found = []
    for info in pkgutil.walk_packages(gcops.__path__, "gcops."):
        if info.name.endswith("__main__"):
            continue
        module = importlib.import_module(info.name)
        found += [c for c in vars(module).values()
                  if inspect.isclass(c) and issubclass(c, BaseException) and c.__module__ == info.name]
    assert len(found) > 20
    strays = [c.__qualname__ for c in found if c is not errors.GcopsError
              and sum(issubclass(c, kind) for kind in KINDS) != 1]
    assert strays == []
