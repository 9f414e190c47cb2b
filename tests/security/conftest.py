"""Fixtures for the attack tests: a real platform and app with two tenants (see two_tenants.py),
and, once per module, a populated platform with every resource kind in tenant B (world.py)."""

from __future__ import annotations

import pytest
from two_tenants import Tenant, make_client, make_platform, make_tenant
from world import World, build_world, isolated_env


@pytest.fixture
def platform(settings):
    return make_platform(settings)


@pytest.fixture
def client(platform):
    with make_client(platform) as c:
        yield c


@pytest.fixture
def tenants(client) -> tuple[Tenant, Tenant]:
    """Tenant A ("acme") and tenant B ("bravo"); A's people are the attackers."""
    return make_tenant(client, "acme"), make_tenant(client, "bravo")


@pytest.fixture(scope="module")
def world(tmp_path_factory) -> World:
    """Tenant A (attacker: member, admin, admin key) and tenant B with one of every resource kind."""
    with isolated_env(tmp_path_factory.mktemp("world") / "home") as settings:
        platform = make_platform(settings)
        with make_client(platform) as c:
            yield build_world(c)
