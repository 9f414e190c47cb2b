"""Fixtures for the attack tests: a real platform and app with two tenants (see two_tenants.py)."""

from __future__ import annotations

import pytest
from two_tenants import Tenant, make_client, make_platform, make_tenant


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
