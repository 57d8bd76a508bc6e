import factory

from accounts.models import User


class UserFactory(factory.django.DjangoModelFactory):
    """A user as registration makes one: the password hashed before the first save."""

    class Meta:
        model = User

    email = factory.Sequence(lambda n: f"user{n}@example.com")
    username = factory.Sequence(lambda n: f"user{n}")
    password = factory.django.Password("Sup3rSecret")
