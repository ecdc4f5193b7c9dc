"""Settings of the daphne that ``daphne_server`` starts: the platform's own settings, read from the
environment the fixture hands over (the test database, data folder and secret), with the test
suite's password hasher, since the users the fixtures make carry its hashes."""

from platform_core.settings import *  # noqa: F403

PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
