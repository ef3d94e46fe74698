"""Fixtures of the dashboard page tests: signed-in test clients of each role.

Roles come from groups (``common.auth``): ``operator`` and ``admin`` groups, or a superuser."""

from __future__ import annotations

from typing import Any

import pytest
from django.contrib.auth.models import Group, User
from django.test import Client

PASSWORD = "a-long-test-password"


def user_with_role(username: str, role: str) -> User:
    """A user that is a viewer, an operator or an admin (member of that group)."""
    user = User.objects.create_user(username=username, password=PASSWORD)
    if role in ("operator", "admin"):
        group, _ = Group.objects.get_or_create(name=role)
        user.groups.add(group)
    return user


def signed_in(user: User) -> Client:
    client = Client()
    client.force_login(user)
    return client


@pytest.fixture
def viewer(db: None) -> Client:
    return signed_in(user_with_role("vera", "viewer"))


@pytest.fixture
def operator(db: None) -> Client:
    return signed_in(user_with_role("otto", "operator"))


@pytest.fixture
def admin(db: None) -> Client:
    return signed_in(user_with_role("ada", "admin"))


def page(client: Client, url: str, **params: Any) -> str:
    """The page's HTML; fails unless it answered 200."""
    response = client.get(url, params)
    assert response.status_code == 200, (url, response.status_code)
    return response.content.decode()
