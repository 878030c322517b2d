"""The policy file: what the shipped example allows, rule by rule, and what will not load."""

from __future__ import annotations

from pathlib import Path

import pytest

from services.runtime.auth import Claims, Policy, Principal, load_policy
from services.runtime.config import ConfigError
from tests.auth._support import EXAMPLE_POLICY, Keys

USERS = "switchboard.user.v1.UserService/"
PRODUCTS = "switchboard.product.v1.ProductService/"


@pytest.fixture
def example(tmp_path: Path) -> Policy:
    keys = Keys.create(tmp_path)
    return load_policy(EXAMPLE_POLICY, secret_file=keys.secret_file)


def user(*scopes: str, roles: tuple[str, ...] = ()) -> Principal:
    claims = Claims("alice", frozenset(scopes), frozenset(roles), expires_at=0.0)
    return Principal(claims=claims)


def service(name: str) -> Principal:
    return Principal(services=frozenset({name, "localhost"}))


def allowed(policy: Policy, method: str, principal: Principal) -> bool:
    return any(rule.allows(principal) for rule in policy.rules_for(method))


def test_reads_need_read_and_writes_need_write(example: Policy) -> None:
    assert allowed(example, USERS + "GetUser", user("users:read"))
    assert allowed(example, USERS + "ListUsers", user("users:read"))
    assert not allowed(example, USERS + "CreateUser", user("users:read"))
    assert allowed(example, USERS + "CreateUser", user("users:write"))
    assert not allowed(example, USERS + "GetUser", user("users:write", "products:read"))


def test_only_an_admin_deletes(example: Policy) -> None:
    assert not allowed(example, USERS + "DeleteUser", user("users:write"))
    assert allowed(example, USERS + "DeleteUser", user("users:write", roles=("admin",)))
    assert not allowed(example, PRODUCTS + "DeleteProduct", user("products:write"))
    assert allowed(example, PRODUCTS + "DeleteProduct", user("products:write", roles=("admin",)))


def test_the_product_certificate_may_get_and_watch_users_and_nothing_else(
    example: Policy,
) -> None:
    product = service("product")
    assert allowed(example, USERS + "GetUser", product)  # the seller check
    assert allowed(example, USERS + "WatchUsers", product)  # the delisting subscription
    for method in ("DeleteUser", "CreateUser", "UpdateUser", "ListUsers"):
        assert not allowed(example, USERS + method, product), method
    assert not allowed(example, USERS + "GetUser", service("stranger"))


def test_unknown_methods_are_denied(example: Policy) -> None:
    assert example.rules_for("other.v1.Other/Anything") == ()


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "policy.toml"
    path.write_text(text)
    return path


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("reflection = 'maybe'", "reflection must be one of"),
        ("[[allow]]\nmethods = ['a/B']\n", "names nobody"),
        ("[[allow]]\nscopes = ['x']\n", "needs methods"),
        ("[[allow]]\nmethods = ['a/B']\nscope = ['x']\n", "unknown key 'scope'"),
        ("[[allow]]\nmethods = 'a/B'\nscopes = ['x']\n", "must be a list"),
        ("[tokens]\nissuer = 'i'\naudience = 'a'\n", "hs256_secret_file or jwks_file"),
        ("[tokens]\nissuer = 'i'\naudience = 'a'\nhs256_secret_file = 'nope'\n", "cannot read"),
        ("allow = [", "not valid TOML"),
    ],
)
def test_a_bad_policy_is_one_line_naming_the_problem(
    tmp_path: Path, text: str, message: str
) -> None:
    with pytest.raises(ConfigError) as caught:
        load_policy(write(tmp_path, text))
    assert message in str(caught.value)
    assert "\n" not in str(caught.value)


def test_key_files_are_relative_to_the_policy(tmp_path: Path) -> None:
    keys = Keys.create(tmp_path / "keys")
    text = "[tokens]\nissuer='i'\naudience='a'\nhs256_secret_file='keys/secret'\n"
    policy = load_policy(write(tmp_path, text))
    assert policy.tokens is not None and policy.tokens.hs256_secret == keys.secret
    assert policy.reflection == "off"  # the safe default
