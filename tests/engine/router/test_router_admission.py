from __future__ import annotations

import pytest

from sloserve_engine.router.admission import (
    Action,
    Reason,
    ServiceQueue,
    decide,
    retry_after,
)
from sloserve_engine.router.placement import Candidate

OK = Candidate("a", 0.2, True, True)
KV = Candidate("b", 0.3, True, False)
LATE = Candidate("c", 3.4, False, True)


def test_place_the_first_feasible_in_rank_order() -> None:
    assert decide([KV, OK], 1.0, True, True).engine_id == "a"
    assert decide([LATE, KV], 1.0, False, True).engine_id == "c"  # admission off: best ranked


def test_reject_when_no_engine_can_make_it() -> None:
    d = decide([LATE], 1.0, True, True)
    assert (d.action, d.reason, d.retry_after_s) == (Action.REJECT, Reason.SLO_INFEASIBLE, 3.0)
    assert decide([], 1.0, True, True).reason is Reason.NO_REPLICA


def test_hold_while_only_kv_is_missing_unless_full() -> None:
    assert decide([KV, LATE], 1.0, True, True).action is Action.HOLD
    assert decide([KV], 1.0, True, False).reason is Reason.QUEUE_FULL


def test_retry_after_is_whole_seconds_at_least_one() -> None:
    assert retry_after(0.0) == 1.0
    assert retry_after(2.1) == 3.0
    assert retry_after(float("inf")) == 60.0


def test_queue_sheds_lower_classes_first_and_releases_important_first() -> None:
    q = ServiceQueue(limit=2, timeout_s=5.0)
    assert q.push("batch1", 2, 0.0) is None
    assert q.push("std1", 1, 0.1) is None
    assert q.has_room(0) and not q.has_room(2)
    assert q.push("inter1", 0, 0.2) == "batch1"
    with pytest.raises(ValueError, match="at least as important"):
        q.push("std2", 1, 0.3)
    assert q.in_order() == ["inter1", "std1"]
    assert q.remove("inter1") and not q.remove("inter1")
    assert q.expired(5.05) == []
    assert q.expired(5.1) == ["std1"]
    assert len(q) == 0


def test_queue_fifo_within_class_and_no_duplicates() -> None:
    q = ServiceQueue(limit=10, timeout_s=1.0)
    for k in range(3):
        q.push(str(k), 1, float(k))
    assert q.in_order() == ["0", "1", "2"]
    with pytest.raises(ValueError, match="already"):
        q.push("1", 1, 0.0)
    with pytest.raises(ValueError):
        ServiceQueue(limit=-1, timeout_s=1.0)
