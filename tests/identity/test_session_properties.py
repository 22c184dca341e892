"""Generated histories of sign-ins, grants, role removals and deactivations, by every path: afterwards no
session survives of a person who lost a role or was deactivated after signing in, and every other
session is untouched."""

from __future__ import annotations

from typing import Any

import pytest
from django.contrib.auth import BACKEND_SESSION_KEY, HASH_SESSION_KEY, SESSION_KEY
from django.contrib.auth.models import Group, User
from django.db import transaction
from hypothesis import HealthCheck, given
from hypothesis import settings as hypothesis_settings
from hypothesis import strategies as st
from qsessions.backends.db import SessionStore
from qsessions.models import Session

from core.context import access_change
from core.roles import Role
from tests.factories import UserFactory

pytestmark = pytest.mark.django_db

PEOPLE = range(3)
ROLES = (Role.AUDITORS.value, Role.PROMPT_AUTHORS.value)
REMOVE_PATHS = ("user.groups.remove", "group.user_set.remove", "user.groups.clear", "group.user_set.clear", "set")
DEACTIVATE_PATHS = ("save", "save(update_fields)")

OPERATIONS = st.one_of(
    st.tuples(st.just("sign_in"), st.sampled_from(PEOPLE)),
    st.tuples(st.just("grant"), st.sampled_from(PEOPLE), st.sampled_from(ROLES)),
    st.tuples(st.just("remove"), st.sampled_from(PEOPLE), st.sampled_from(ROLES), st.sampled_from(REMOVE_PATHS)),
    st.tuples(st.just("deactivate"), st.sampled_from(PEOPLE), st.sampled_from(DEACTIVATE_PATHS)),
    st.tuples(st.just("reactivate"), st.sampled_from(PEOPLE)),
    st.tuples(st.just("staff"), st.sampled_from(PEOPLE), st.booleans()),
    st.tuples(st.just("rename"), st.sampled_from(PEOPLE)),
)


def sign_in(user: User) -> str:
    """A session as Django's login() leaves it (without a request)."""
    store = SessionStore()
    store[SESSION_KEY] = str(user.pk)
    store[BACKEND_SESSION_KEY] = "identity.backends.ModelBackend"
    store[HASH_SESSION_KEY] = user.get_session_auth_hash()
    store.create()
    return str(store.session_key)


class World:
    """What the history should leave: who holds which role, and which sessions should be alive."""

    def __init__(self, users: list[User]) -> None:
        self.users = users
        self.roles = {index: set(users[index].groups.values_list("name", flat=True)) for index in PEOPLE}
        self.active = dict.fromkeys(PEOPLE, True)
        self.staff = dict.fromkeys(PEOPLE, True)
        self.sessions: dict[str, int] = {}  # alive session key → person

    def lose(self, people: set[int]) -> None:
        self.sessions = {key: person for key, person in self.sessions.items() if person not in people}

    def apply(self, operation: tuple[Any, ...]) -> None:
        kind, person = operation[0], operation[1]
        user = User.objects.get(pk=self.users[person].pk)
        if kind == "sign_in":
            self.sessions[sign_in(user)] = person
        elif kind == "grant":
            with access_change(actor_repr="test"):
                user.groups.add(Group.objects.get(name=operation[2]))
            self.roles[person].add(operation[2])
        elif kind == "remove":
            self._remove(user, person, Group.objects.get(name=operation[2]), operation[3])
        elif kind == "deactivate":
            user.is_active = False
            user.save(update_fields=["is_active"] if operation[2] == "save(update_fields)" else None)
            if self.active[person]:
                self.lose({person})
            self.active[person] = False
        elif kind == "reactivate":
            user.is_active = True
            user.save()
            self.active[person] = True
        elif kind == "staff":
            user.is_staff = operation[2]
            user.save()
            if self.staff[person] and not operation[2]:
                self.lose({person})
            self.staff[person] = operation[2]
        elif kind == "rename":
            user.first_name = f"renamed {person}"
            user.save()

    def _remove(self, user: User, person: int, group: Group, path: str) -> None:
        if path == "group.user_set.clear":
            losers = {index for index in PEOPLE if group.name in self.roles[index]}
            group.user_set.clear()
        else:
            losers = {person} if group.name in self.roles[person] else set()
            if path == "user.groups.clear":
                losers = {person} if self.roles[person] else set()
                user.groups.clear()
            elif path == "user.groups.remove":
                user.groups.remove(group)
            elif path == "group.user_set.remove":
                group.user_set.remove(user)
            else:
                user.groups.set(user.groups.exclude(pk=group.pk))
        for index in losers:
            self.roles[index] = set() if path == "user.groups.clear" else self.roles[index] - {group.name}
        self.lose(losers)


def test_no_session_outlives_its_holders_access_and_no_other_ends():
    users = [
        UserFactory(username="pat-auditor", roles=[Role.AUDITORS]),
        UserFactory(username="sam-both", roles=[Role.AUDITORS, Role.PROMPT_AUTHORS]),
        UserFactory(username="kim-none"),
    ]

    @hypothesis_settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow], derandomize=True)
    @given(operations=st.lists(OPERATIONS, min_size=1, max_size=14))
    def check(operations):
        with transaction.atomic():
            world = World(users)
            # Everyone starts signed in, so that every loss of access has sessions to end and to spare.
            for operation in [("sign_in", person) for person in PEOPLE] + operations:
                world.apply(operation)
                alive = set(Session.objects.values_list("session_key", flat=True))
                assert alive == set(world.sessions), operation
            transaction.set_rollback(True)

    check()
