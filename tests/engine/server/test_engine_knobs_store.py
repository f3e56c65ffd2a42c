"""The knobs store: validation before change, atomic mirror for the scheduler, listeners."""

from __future__ import annotations

from pathlib import Path

import pytest

from sloserve_engine.contract.knobs import InvalidKnobsError, Knobs
from sloserve_engine.server.auth import AdminAuth, AdminTokenError
from sloserve_engine.server.knobs_store import KnobsStore


def test_mirror_file_follows_the_document_in_force(tmp_path: Path) -> None:
    mirror = tmp_path / "knobs.json"
    store = KnobsStore(Knobs(policy="vllm"), mirror_path=mirror)
    assert Knobs.model_validate_json(mirror.read_text()) == Knobs(policy="vllm")
    new = Knobs(policy="sloserve", reservation_ratio=0.2)
    store.replace(new)
    assert Knobs.model_validate_json(mirror.read_text()) == new
    assert [p.name for p in tmp_path.iterdir()] == ["knobs.json"]  # no temp files left


def test_failed_mirror_write_leaves_the_old_document_in_force(tmp_path: Path) -> None:
    mirror = tmp_path / "run" / "knobs.json"
    mirror.parent.mkdir()
    store = KnobsStore(Knobs(policy="vllm"), mirror_path=mirror)
    mirror.unlink()
    mirror.parent.rmdir()
    mirror.parent.write_text("")  # the run directory is gone: the write fails
    with pytest.raises(OSError):
        store.replace(Knobs(policy="vllm", chunk_max_tokens=128))
    assert store.knobs == Knobs(policy="vllm")


def test_listeners_hear_changes_only() -> None:
    heard: list[int] = []
    store = KnobsStore(Knobs(policy="vllm"))
    store.subscribe(lambda k: heard.append(k.revision()))
    store.replace(Knobs(policy="vllm"))
    assert heard == []
    store.replace(Knobs(policy="vllm", chunk_min_tokens=8))
    assert heard == [Knobs(policy="vllm", chunk_min_tokens=8).revision()]


def test_rejected_document_is_not_applied_and_listeners_stay_silent() -> None:
    def refuse(knobs: Knobs) -> None:
        if knobs.policy == "ecoserve":
            raise InvalidKnobsError([])

    heard: list[Knobs] = []
    store = KnobsStore(Knobs(policy="vllm"), validate=refuse)
    store.subscribe(heard.append)
    with pytest.raises(InvalidKnobsError):
        store.replace(Knobs(policy="ecoserve"))
    assert store.knobs.policy == "vllm"
    assert heard == []


def test_auth_accepts_only_the_exact_bearer_token(tmp_path: Path) -> None:
    token = tmp_path / "token"
    token.write_text("s3cret-token\n")
    auth = AdminAuth(token)
    assert auth.check("Bearer s3cret-token").allowed
    assert auth.check("bearer s3cret-token").allowed  # the scheme is case-insensitive
    for header in (
        None,
        "",
        "Bearer",
        "Bearer s3cret",
        "Bearer s3cret-token2",
        "Token s3cret-token",
    ):
        assert auth.check(header).status == 401
    assert AdminAuth(None).check("Bearer s3cret-token").status == 403


def test_auth_refuses_an_empty_token_file_at_start(tmp_path: Path) -> None:
    token = tmp_path / "token"
    token.write_text("  \n")
    with pytest.raises(AdminTokenError, match="empty"):
        AdminAuth(token)


def test_auth_answers_503_when_the_token_file_disappears(tmp_path: Path) -> None:
    token = tmp_path / "token"
    token.write_text("abc")
    auth = AdminAuth(token)
    token.unlink()
    decision = auth.check("Bearer abc")
    assert decision.status == 503
    assert "abc" not in decision.message
