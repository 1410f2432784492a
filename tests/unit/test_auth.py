"""API keys without a database: the token format, the stored hash, the bounds of a key's fields, what each
role may call, which ledgers and tenants a key acts on, and the principal of the call being served."""

from __future__ import annotations

import asyncio
import dataclasses
import hashlib
import hmac
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from ledger.auth import (
    KEY_LEDGERS_MAX,
    LEDGER_MAX,
    LEDGERS_ALLOWED,
    LEDGERS_REQUIRED,
    OPEN_SERVICES,
    ROLE_PERMISSIONS,
    TOKEN_LENGTH,
    ApiKey,
    Authenticator,
    AuthFailure,
    MalformedToken,
    MethodPermissions,
    Permission,
    Principal,
    Role,
    acting_as,
    check_still_allowed,
    current_principal,
    format_token,
    hash_secret,
    is_open,
    may_see_ledger,
    new_secret,
    parse_token,
    role_permissions,
)
from ledger.auth._keys import check_ledgers, check_name, check_role, check_tenant
from ledger.server import PERMISSIONS
from ledger.v1 import ledger_pb2

SERVICE = ledger_pb2.DESCRIPTOR.services_by_name["Ledger"]
README = Path(__file__).resolve().parents[2] / "README.md"


def key(role: Role = Role.WRITE, ledgers: frozenset[int] = frozenset({978}), secret: str = "") -> ApiKey:
    key_id = "0123456789abcdef"
    return ApiKey(key_id=key_id, name="", tenant="acme", role=role, ledgers=ledgers,
                  secret_sha256=hash_secret(key_id, secret), created_at=datetime.now(UTC))  # fmt: skip


def test_tokens_carry_256_random_bits_and_parse_back() -> None:
    pairs = {new_secret() for _ in range(100)}
    assert len(pairs) == 100
    for key_id, secret in pairs:
        assert len(key_id) == 16 and len(secret) == 64 and int(key_id, 16) >= 0 and int(secret, 16) >= 0
        token = format_token(key_id, secret)
        assert token == f"lk_{key_id}_{secret}" and len(token) == TOKEN_LENGTH == 84
        assert parse_token(token) == (key_id, secret)


@pytest.mark.parametrize(
    "token",
    [
        "",
        "lk_",
        "lk_" + "a" * 81,
        "xk_0123456789abcdef_" + "a" * 64,
        "lk_0123456789abcdef_" + "A" * 64,
        "lk_0123456789abcdef_" + "a" * 63 + "g",
        "lk_0123456789abcdef-" + "a" * 64,
        "lk_0123456789abcde_" + "a" * 65,
        "lk_0123456789abcdef_" + "a" * 65,
        "lk_0123456789abcdef_" + "a" * 63,
        "lk_0123456789abcdef_" + "a" * 62 + " a",
    ],
)
def test_malformed_tokens_are_refused_without_being_repeated(token: str) -> None:
    with pytest.raises(MalformedToken) as info:
        parse_token(token)
    message = str(info.value)
    assert "lk_<16 hex digits>_<64 hex digits>" in message or "an API key has 84 characters" in message
    if len(token) > 20:
        assert token[20:] not in message


def test_only_a_hash_bound_to_the_key_id_is_kept(monkeypatch: pytest.MonkeyPatch) -> None:
    key_id, secret = new_secret()
    other_id, other_secret = new_secret()
    digest = hash_secret(key_id, secret)
    assert digest == hashlib.sha256(f"lk:{key_id}:{secret}".encode()).digest() and len(digest) == 32
    assert digest not in (hash_secret(other_id, secret), hash_secret(key_id, other_secret))
    stored = ApiKey(key_id=key_id, name="", tenant="a", role=Role.READ, ledgers=frozenset({1}), secret_sha256=digest,
                    created_at=datetime.now(UTC))  # fmt: skip
    compared: list[tuple[bytes, bytes]] = []
    constant_time = hmac.compare_digest

    def compare_digest(a: bytes, b: bytes) -> bool:
        compared.append((a, b))
        return constant_time(a, b)

    monkeypatch.setattr("ledger.auth._keys.hmac.compare_digest", compare_digest)
    assert stored.matches(secret) and not stored.matches(other_secret)
    assert compared == [(digest, digest), (hash_secret(key_id, other_secret), digest)]


def test_every_field_of_a_key_is_bounded() -> None:
    assert check_tenant("a") == "a" and check_tenant("shop-1.eu_west:2") == "shop-1.eu_west:2"
    assert check_tenant("t" * 64) == "t" * 64
    for tenant in ("", "t" * 65, " a", "a b", "-a", "ä", "a\n"):
        with pytest.raises(ValueError, match="tenant must be 1 to 64"):
            check_tenant(tenant)
    assert (
        check_name("") == "" and check_name("n" * 128) == "n" * 128 and check_name("POS 3 · hall B") == "POS 3 · hall B"
    )
    with pytest.raises(ValueError, match="name must be at most 128 characters, got 129"):
        check_name("n" * 129)
    with pytest.raises(ValueError, match="name must be printable"):
        check_name("a\nb")
    assert check_role("admin") is Role.ADMIN
    assert [check_role(role) for role in ("pos", "shop", "operator", "readonly")] == [
        Role.POS, Role.SHOP, Role.OPERATOR, Role.READONLY,
    ]  # fmt: skip
    with pytest.raises(ValueError, match="role must be one of read, write, admin, pos, shop, operator, readonly, got"):
        check_role("root")
    assert check_ledgers(Role.READ, [1, LEDGER_MAX, 1]) == frozenset({1, 2**32 - 1})
    assert check_ledgers(Role.WRITE, range(1, KEY_LEDGERS_MAX + 1)) == frozenset(range(1, 1025))
    assert check_ledgers(Role.ADMIN, []) == frozenset()
    for role in (Role.POS, Role.SHOP, Role.OPERATOR, Role.READONLY):
        assert check_ledgers(role, []) == frozenset()
    assert check_ledgers(Role.READONLY, [978, 840]) == frozenset({978, 840})
    for role, ledgers, message in [
        (Role.READ, [0], "ledger must be between 1 and 4294967295, got 0"),
        (Role.READ, [2**32], "got 4294967296"),
        (Role.WRITE, [-1], "got -1"),
        (Role.WRITE, [], "a write key must name at least one ledger"),
        (Role.ADMIN, [978], "an admin key is not bound to ledgers"),
        (Role.POS, [978], "a pos key is bound to its tenant, not to ledgers"),
        (Role.SHOP, [978], "a shop key is bound to its tenant, not to ledgers"),
        (Role.OPERATOR, [978], "an operator key is bound to its tenant, not to ledgers"),
        (Role.READONLY, [0], "ledger must be between 1 and 4294967295, got 0"),
        (Role.READ, range(1, KEY_LEDGERS_MAX + 2), "at most 1024 per key, got 1025"),
    ]:
        with pytest.raises(ValueError, match=message):
            check_ledgers(role, ledgers)


def test_each_method_of_the_service_needs_a_named_permission() -> None:
    reads = {"LookupAccounts", "LookupTransfers", "GetAccountTransfers", "GetAccountBalances", "SubscribeTransfers",
             "GetServerInfo"}  # fmt: skip
    writes = {"CreateAccounts", "CreateTransfers", "CreateTransfersPacked", "TransferStream", "TransferBatches"}
    # A method added to the service must be placed here; until then it needs an admin key.
    assert {m.name for m in SERVICE.methods} == reads | writes == set(PERMISSIONS)
    permissions = MethodPermissions([(SERVICE.full_name, PERMISSIONS)])
    for method in SERVICE.methods:
        path = f"/{SERVICE.full_name}/{method.name}"
        needed = Permission.LEDGER_READ if method.name in reads else Permission.LEDGER_WRITE
        assert permissions.needed(path) is needed
        readers = {Role.READ, Role.WRITE, Role.READONLY, Role.ADMIN}
        for role in Role:
            principal = Principal("k", "t", role, None if role is Role.ADMIN else frozenset({1}))
            allowed = role in ({Role.WRITE, Role.ADMIN} if needed is Permission.LEDGER_WRITE else readers)
            assert principal.may(permissions.needed(path)) is allowed, (path, role)
    for path in (f"/{SERVICE.full_name}/Future", "/wallet.v1.Wallet/TopUp", "garbage"):
        assert permissions.needed(path) is Permission.ADMIN
        assert not Principal("k", "t", Role.WRITE, frozenset({1})).may(permissions.needed(path))
        assert Principal("k", "t", Role.ADMIN, None).may(permissions.needed(path))


def test_roles_are_named_sets_of_permissions() -> None:
    """The three roles keys were created with keep their meaning: read reads, write also moves money, admin
    may do everything (a permission a later service adds included). The wallet roles: a POS terminal reads
    and pays, a shop's server also tops up, refunds, issues vouchers and registers webhooks, the tenant's
    operator has every wallet permission, a read-only dashboard reads wallets and ledgers."""
    P = Permission
    assert {role.value: {p.value for p in permissions} for role, permissions in ROLE_PERMISSIONS.items()} == {
        "read": {"ledger.read"},
        "write": {"ledger.read", "ledger.write"},
        "admin": {"ledger.read", "ledger.write", "wallet.read", "wallet.pay", "wallet.topup", "wallet.refund",
                  "wallet.book", "wallet.grant", "wallet.voucher", "wallet.tenant", "wallet.webhooks", "admin"},
        "pos": {"wallet.read", "wallet.pay"},
        "shop": {"wallet.read", "wallet.pay", "wallet.topup", "wallet.refund", "wallet.voucher", "wallet.webhooks"},
        "operator": {"wallet.read", "wallet.pay", "wallet.topup", "wallet.refund", "wallet.book", "wallet.grant",
                     "wallet.voucher", "wallet.tenant", "wallet.webhooks"},
        "readonly": {"wallet.read", "ledger.read"},
    }  # fmt: skip
    assert ROLE_PERMISSIONS[Role.ADMIN] == set(Permission)
    assert ROLE_PERMISSIONS[Role.OPERATOR] == {p for p in Permission if p.value.startswith("wallet.")}
    assert ROLE_PERMISSIONS[Role.POS] < ROLE_PERMISSIONS[Role.SHOP] < ROLE_PERMISSIONS[Role.OPERATOR]
    for role in Role:
        principal = Principal("k", "t", role, None if role is Role.ADMIN else frozenset())
        assert principal.permissions == ROLE_PERMISSIONS[role]
        assert {p for p in Permission if principal.may(p)} == ROLE_PERMISSIONS[role]
    assert role_permissions(Role.SHOP) == [P.WALLET_READ, P.WALLET_PAY, P.WALLET_TOPUP, P.WALLET_REFUND,
                                           P.WALLET_VOUCHER, P.WALLET_WEBHOOKS]  # fmt: skip
    assert role_permissions(Role.ADMIN) == list(Permission)


def test_roles_with_ledger_permissions_name_ledgers_and_the_wallet_roles_none() -> None:
    """A key names ledgers when what it may do is on ledgers: read and write keys must, a readonly key may (its
    ledger.read covers them), an admin key touches all and names none, the wallet roles act for their tenant."""
    on_ledgers = {Permission.LEDGER_READ, Permission.LEDGER_WRITE}
    only_on_ledgers = {role for role in Role if ROLE_PERMISSIONS[role] <= on_ledgers}
    assert LEDGERS_REQUIRED == only_on_ledgers == {Role.READ, Role.WRITE}
    assert LEDGERS_ALLOWED == {
        role for role in Role if role is not Role.ADMIN and ROLE_PERMISSIONS[role] & on_ledgers
    } == {Role.READ, Role.WRITE, Role.READONLY}  # fmt: skip
    assert all(value.isascii() and value.isalpha() and value.islower() for value in Role)  # safe in a CHECK


def test_the_readme_tables_name_every_permission_and_each_roles_set() -> None:
    section = README.read_text().split("## API keys and tenants", 1)[1].split("\n## ", 1)[0]
    rows = [[cell.strip() for cell in line.strip("|").split("|")] for line in section.splitlines()
            if line.startswith("| `")]  # fmt: skip
    assert [row[0] for row in rows if len(row) == 2] == [f"`{p.value}`" for p in Permission]
    roles = {row[0].strip("`"): row[2] for row in rows if len(row) == 4}
    assert set(roles) == {role.value for role in Role}
    for role in Role:
        if role is Role.ADMIN:
            assert roles[role.value] == "all of them"
        elif role is Role.OPERATOR:
            assert roles[role.value] == "every `wallet.*` permission"
            assert ROLE_PERMISSIONS[role] == {p for p in Permission if p.value.startswith("wallet.")}
        else:
            assert {cell.strip("` ") for cell in roles[role.value].split(",")} == set(ROLE_PERMISSIONS[role]), role


def test_health_and_reflection_are_open_and_nothing_else() -> None:
    assert is_open("/grpc.health.v1.Health/Check") and is_open("/grpc.health.v1.Health/Watch")
    assert is_open("/grpc.reflection.v1alpha.ServerReflection/ServerReflectionInfo")
    assert is_open("/grpc.reflection.v1.ServerReflection/ServerReflectionInfo")
    assert len(OPEN_SERVICES) == 3
    for method in SERVICE.methods:
        assert not is_open(f"/{SERVICE.full_name}/{method.name}")
    assert not is_open("/grpc.health.v1.HealthX/Check") and not is_open("")


def test_a_principal_sees_its_ledgers_and_an_admin_all() -> None:
    writer = Principal.of(key(Role.WRITE, frozenset({978, 840})))
    assert writer == Principal("0123456789abcdef", "acme", Role.WRITE, frozenset({978, 840}))
    assert writer.may_see_ledger(978) and writer.may_see_ledger(840) and not writer.may_see_ledger(36)
    assert not writer.may_see_ledger(0)
    admin = Principal.of(key(Role.ADMIN, frozenset()))
    assert admin.ledgers is None and admin.may_see_ledger(36) and admin.may_see_ledger(0)
    assert writer.describe() == "API key 0123456789abcdef (tenant acme, role write)"


def test_a_principal_acts_for_its_own_tenant_and_an_admin_for_any() -> None:
    for role in Role:
        if role is Role.ADMIN:
            continue
        principal = Principal.of(key(role, frozenset({978}) if role in LEDGERS_REQUIRED else frozenset()))
        assert principal.may_act_for_tenant("acme"), role
        for other in ("acme2", "Acme", "acm", "", "ops"):
            assert not principal.may_act_for_tenant(other), (role, other)
    admin = Principal.of(key(Role.ADMIN, frozenset()))
    assert all(admin.may_act_for_tenant(tenant) for tenant in ("acme", "ops", "shop-7"))


def test_a_wallet_key_sees_no_ledger() -> None:
    """Its tenant's ledgers are the Wallet service's to find; through the Ledger service it sees none."""
    for role in (Role.POS, Role.SHOP, Role.OPERATOR, Role.READONLY):
        principal = Principal.of(key(role, frozenset()))
        assert principal.ledgers == frozenset() and not principal.may_see_ledger(978), role
    dashboard = Principal.of(key(Role.READONLY, frozenset({978})))
    assert dashboard.may_see_ledger(978) and not dashboard.may_see_ledger(840)
    assert dashboard.describe() == "API key 0123456789abcdef (tenant acme, role readonly)"


def test_the_current_principal_holds_for_its_call_and_the_tasks_it_starts() -> None:
    reader = Principal("k", "t", Role.READ, frozenset({1}))
    assert current_principal() is None and may_see_ledger(2)  # no key asked for: everything is visible

    async def call() -> list[object]:
        with acting_as(reader):
            seen = [current_principal(), may_see_ledger(1), may_see_ledger(2)]
            seen.append(await asyncio.create_task(_principal_later()))
        seen.append(current_principal())
        return seen

    assert asyncio.run(call()) == [reader, True, False, reader, None]
    assert current_principal() is None


async def _principal_later() -> Principal | None:
    await asyncio.sleep(0)
    return current_principal()


def test_an_authenticator_is_for_auto_or_required() -> None:
    with pytest.raises(ValueError, match="policy must be auto or required"):
        Authenticator(None, policy="off", refresh_seconds=1)  # type: ignore[arg-type]


class _Keys:
    """A key table in memory, for an authenticator without a database."""

    def __init__(self, *keys: ApiKey) -> None:
        self.keys = {k.key_id: k for k in keys}

    def all_keys(self) -> list[ApiKey]:
        return list(self.keys.values())

    def find(self, key_id: str) -> ApiKey | None:
        return self.keys.get(key_id)

    def close(self) -> None:
        pass


def test_grants_of_a_revoked_or_expired_key_end_and_others_do_not() -> None:
    now = [datetime(2026, 12, 1, tzinfo=UTC)]
    expiring = ApiKey(key_id="1111111111111111", name="", tenant="a", role=Role.READ, ledgers=frozenset({1}),
                      secret_sha256=b"", created_at=now[0], expires_at=now[0] + timedelta(minutes=5))  # fmt: skip
    revoked_later = ApiKey(key_id="2222222222222222", name="", tenant="b", role=Role.WRITE, ledgers=frozenset({2}),
                           secret_sha256=b"", created_at=now[0])  # fmt: skip
    keys = _Keys(expiring, revoked_later)

    async def run() -> None:
        auth = Authenticator(keys, policy="required", refresh_seconds=3600, clock=lambda: now[0])  # type: ignore[arg-type]
        await auth.refresh()
        first, second = Principal.of(expiring), Principal.of(revoked_later)
        grants = [auth.open_grant(first), auth.open_grant(second)]
        with acting_as(first, grants[0]):
            check_still_allowed()  # nothing ended yet
        auth.end_refused_grants()
        assert [g.refusal for g in grants] == [None, None]
        # The first key expires: its stream's grant ends, the other's does not.
        now[0] += timedelta(minutes=5)
        auth.end_refused_grants()
        assert grants[0].refusal is not None and "expired at 2026-12-01T00:05:00" in grants[0].refusal.message
        assert grants[0].ended().done() and grants[1].refusal is None
        with acting_as(first, grants[0]), pytest.raises(AuthFailure, match="expired"):
            check_still_allowed()
        # The second is revoked in the table: the next refresh ends its grant.
        keys.keys[revoked_later.key_id] = dataclasses.replace(revoked_later, revoked_at=now[0])
        await auth.refresh()
        auth.end_refused_grants()
        assert grants[1].refusal is not None and "was revoked" in grants[1].refusal.message
        # A closed grant is forgotten.
        for grant in grants:
            auth.close_grant(grant)
        assert not auth._grants

    asyncio.run(run())
