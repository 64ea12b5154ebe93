"""The window leaves every entered node last-in-first-out, each once, whatever fails."""
from __future__ import annotations

import threading

import pytest
import structlog

from gcops.maintenance import window as window_module
from gcops.errors import HostError, WindowFailed
from gcops.maintenance.node import Node, NodeState
from gcops.maintenance.window import Window


class Plan:
    host_mode = "readonly"


def nodes(*names):
    out = [Node(name) for name in names]
    for node in out:
        node.plan = Plan()
    return out


@pytest.fixture
def calls(monkeypatch):
    log = []

    def enter(node, instance_name, state_dir, log_):
        log.append(("enter", node.address))
        node.entered = True
        if node.address == "bad-enter":
            raise WindowFailed("cannot enter")
        return None

    def verify(node, outcome, instance=None):
        log.append(("verify", node.address))

    def leave(node, instance, state_dir, log_):
        log.append(("leave", node.address))
        if node.address == "bad-leave":
            raise HostError("the host vanished")
        if node.address == "buggy-leave":
            raise RuntimeError("a bug in gcops")
        node.left = True

    monkeypatch.setattr(window_module, "enter", enter)
    monkeypatch.setattr(window_module, "verify", verify)
    monkeypatch.setattr(window_module, "leave", leave)
    return log


class Instance:
    name = "reg"


def make(ns):
    return Window(ns, Instance(), None, structlog.get_logger(), threading.Event(), lambda *a, **k: None)


def test_leaves_lifo_each_once_and_a_failing_leave_never_skips_the_rest(calls):
    ns = nodes("gc-node", "bad-leave", "c")
    with pytest.raises(ValueError):
        with (w := make(ns)):
            raise ValueError("GC failed")
    leaves = [name for what, name in calls if what == "leave"]
    assert [name for what, name in calls if what == "enter"] == ["bad-leave", "c", "gc-node"]
    assert leaves == ["gc-node", "c", "bad-leave"]
    assert ns[1].state is NodeState.NOT_RESTORED and "the host vanished" in ns[1].notes[0]
    assert ns[0].left and ns[2].left and not w.restored


def test_a_bug_while_leaving_one_node_is_raised_after_the_others_are_left(calls):
    ns = nodes("gc-node", "buggy-leave", "c")
    with pytest.raises(RuntimeError, match="a bug in gcops"):
        with make(ns):
            pass
    assert [name for what, name in calls if what == "leave"] == ["gc-node", "c", "buggy-leave"]
    assert ns[0].left and ns[2].left and ns[1].state is NodeState.NOT_RESTORED


def test_a_node_that_fails_to_enter_is_left_with_those_before_it(calls):
    ns = nodes("gc-node", "a", "bad-enter")
    with pytest.raises(WindowFailed):
        with make(ns):
            pytest.fail("the block must not run")
    assert [name for what, name in calls if what == "leave"] == ["bad-enter", "a"]
    assert ("enter", "gc-node") not in calls


def test_cancel_before_entering_changes_nothing(calls):
    w = make(nodes("gc-node"))
    w.cancel.set()
    from gcops.transport.hosts import Cancelled
    with pytest.raises(Cancelled):
        with w:
            pass
    assert calls == []


def test_the_restore_reserve_is_the_gc_stop_and_each_nodes_own_restart():
    """What the GC must leave of max_window: stopping it, then each entered node restarted back (one after
    the other) as long as its restart into the window took; a node without a restart adds nothing."""
    a, b, c = nodes("a", "b", "c")
    a.service_seconds, b.service_seconds = 1.5, 0.25
    w = Window([a, b, c], None, None, structlog.get_logger(), threading.Event(), lambda *a, **k: None)
    assert w.restore_reserve == window_module.GC_STOP_SECONDS
    w.entered = [b, c, a]
    assert w.restore_reserve == window_module.GC_STOP_SECONDS + 1.75
