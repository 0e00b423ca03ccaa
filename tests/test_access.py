from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import select

from bastion.access import AccessStore, Policy, Principal
from bastion.config import AccessConfig, RolePolicy
from bastion.errors import AuthenticationFailed, BadRequest, NotFound, PermissionDenied
from bastion.storage import Database
from bastion.storage.tables import ApiKey


@pytest.fixture
def store(db_url: str) -> AccessStore:
    db = Database(db_url)
    db.migrate()
    db.migrate()  # migrations are idempotent
    return AccessStore(db)


def test_key_resolves_to_its_principal(store: AccessStore) -> None:
    created = store.create_key(tenant="acme", user="carol", role="user", groups=["sales", "sales"])
    principal = store.resolve(created.secret)
    assert principal == Principal("acme", "carol", "user", ("sales",), created.key_id)


def test_only_a_salted_hash_is_stored(store: AccessStore, db_url: str) -> None:
    a = store.create_key(tenant="acme", user="a", role="user")
    b = store.create_key(tenant="acme", user="b", role="user")
    with Database(db_url).session() as s:
        rows = list(s.scalars(select(ApiKey)))
    secrets_ = {a.secret.split("_", 2)[2], b.secret.split("_", 2)[2]}
    for row in rows:
        assert row.hash not in secrets_ and len(row.hash) == 64
        assert all(secret not in (row.hash + row.salt) for secret in secrets_)
    assert rows[0].salt != rows[1].salt


@pytest.mark.parametrize(
    "presented",
    [None, "", "sk-whatever", "bst_0123456789abcdef_" + "x" * 43, "Bearer bst_abc"],
)
def test_bad_keys_are_refused(store: AccessStore, presented: str | None) -> None:
    with pytest.raises(AuthenticationFailed):
        store.resolve(presented)


def test_a_tampered_secret_is_refused(store: AccessStore) -> None:
    created = store.create_key(tenant="acme", user="a", role="user")
    forged = created.secret[:-1] + ("A" if created.secret[-1] != "A" else "B")
    with pytest.raises(AuthenticationFailed, match="invalid"):
        store.resolve(forged)


def test_revoked_keys_stop_working(store: AccessStore) -> None:
    created = store.create_key(tenant="acme", user="a", role="user")
    store.revoke(created.key_id)
    with pytest.raises(AuthenticationFailed, match="revoked"):
        store.resolve(created.secret)
    assert store.list_keys("acme")[0].revoked_at is not None


def test_a_key_stops_working_when_it_expires_even_if_remembered(store: AccessStore) -> None:
    soon = store.create_key(
        tenant="acme", user="a", role="user", expires_at=datetime.now(UTC) + timedelta(seconds=0.5)
    )
    assert store.resolve(soon.secret).user == "a"  # and remembered for key_cache_seconds (5)
    time.sleep(0.6)
    with pytest.raises(AuthenticationFailed, match=r"expired at .*bastion keys rotate"):
        store.resolve(soon.secret)


def test_rotation_keeps_the_old_key_for_the_overlap_then_only_the_new(store: AccessStore) -> None:
    old = store.create_key(tenant="acme", user="a", role="developer", label="ci")
    new = store.rotate(old.key_id, timedelta(hours=1))
    assert store.resolve(old.secret).user == store.resolve(new.secret).user == "a"
    assert store.resolve(new.secret).role == "developer"
    listed = {k.key_id: k for k in store.list_keys("acme")}
    assert listed[new.key_id].label == "ci" and listed[new.key_id].expires_at is None
    ends = listed[old.key_id].expires_at
    assert ends is not None and timedelta(minutes=59) < ends - datetime.now(UTC) <= timedelta(
        hours=1
    )
    store.rotate(new.key_id, timedelta(0))  # no overlap: the key ends now
    with pytest.raises(AuthenticationFailed, match="expired"):
        store.resolve(new.secret)
    store.revoke(old.key_id)
    with pytest.raises(BadRequest, match="revoked"):
        store.rotate(old.key_id, timedelta(hours=1))
    with pytest.raises(NotFound):
        store.rotate(old.key_id, timedelta(hours=1), tenant="globex")


def test_a_tenant_cannot_revoke_another_tenants_key(store: AccessStore) -> None:
    created = store.create_key(tenant="acme", user="a", role="user")
    with pytest.raises(NotFound):
        store.revoke(created.key_id, tenant="globex")
    assert store.resolve(created.secret).tenant == "acme"


def test_list_keys_is_scoped_by_tenant(store: AccessStore) -> None:
    store.create_key(tenant="acme", user="a", role="user")
    store.create_key(tenant="globex", user="b", role="admin")
    assert [k.user for k in store.list_keys("globex")] == ["b"]
    assert len(store.list_keys()) == 2


@pytest.mark.parametrize(("field", "value"), [("tenant", "a b"), ("user", ""), ("role", "root")])
def test_invalid_names_and_roles_are_refused(store: AccessStore, field: str, value: str) -> None:
    args = {"tenant": "acme", "user": "a", "role": "user", field: value}
    with pytest.raises(BadRequest):
        store.create_key(**args)
    assert store.list_keys() == []


def test_policy_globs() -> None:
    policy = Policy(AccessConfig(policies={"user": RolePolicy(models=["small-*"], apps=["chat"])}))
    user = Principal("acme", "u", "user")
    policy.authorize(user, app="chat", model="small-1")
    with pytest.raises(PermissionDenied, match="model 'big-1'"):
        policy.authorize(user, app="chat", model="big-1")
    with pytest.raises(PermissionDenied, match="app 'finance'"):
        policy.authorize(user, app="finance", model="small-1")
    with pytest.raises(PermissionDenied):  # a role with no policy may do nothing
        policy.authorize(Principal("acme", "d", "developer"), app="chat", model="small-1")


def test_resolved_keys_are_cached_briefly_across_replicas(db_url: str) -> None:
    db = Database(db_url)
    db.migrate()
    replica_a, replica_b = AccessStore(db, cache_seconds=60), AccessStore(db)
    uncached = AccessStore(db, cache_seconds=0)
    created = replica_a.create_key(tenant="acme", user="a", role="user")
    replica_a.resolve(created.secret)
    replica_b.revoke(created.key_id)
    assert replica_a.resolve(created.secret).user == "a"  # within its cache window
    with pytest.raises(AuthenticationFailed):
        uncached.resolve(created.secret)
    with pytest.raises(AuthenticationFailed):
        replica_b.resolve(created.secret)  # the revoking replica forgets at once


def test_a_changed_role_is_not_served_from_the_cache(store: AccessStore) -> None:
    first = store.create_key(tenant="acme", user="a", role="user")
    assert store.resolve(first.secret).role == "user"
    store.create_key(tenant="acme", user="a", role="admin")
    assert store.resolve(first.secret).role == "admin"
