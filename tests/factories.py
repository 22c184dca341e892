from __future__ import annotations

from typing import Any

import factory
from django.contrib.auth.models import Group, User

from audit.roles import Role

PASSWORD = "correct-horse-battery-staple"


class UserFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = User
        django_get_or_create = ("username",)
        skip_postgeneration_save = True

    username = factory.Sequence(lambda n: f"user{n}")
    email = factory.LazyAttribute(lambda user: f"{user.username}@example.com")
    is_staff = True
    password = factory.django.Password(PASSWORD)

    @factory.post_generation
    def roles(self: User, create: bool, extracted: list[Role] | None, **kwargs: Any) -> None:
        for role in extracted or []:
            self.groups.add(Group.objects.get(name=role.value))
