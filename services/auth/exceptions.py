"""Errors auth raises over RPC. Registered for deserialization so callers get these classes back."""
from nameko.exceptions import deserialize_to_instance


@deserialize_to_instance
class InvalidInput(Exception):
    pass


@deserialize_to_instance
class UserExists(Exception):
    pass


@deserialize_to_instance
class RegistrationClosed(Exception):
    pass


@deserialize_to_instance
class InvalidCredentials(Exception):
    pass


@deserialize_to_instance
class InvalidToken(Exception):
    pass


@deserialize_to_instance
class TooManyAttempts(Exception):
    """args: (message, retry_after_seconds)"""

    @property
    def retry_after(self):
        return int(self.args[1]) if len(self.args) > 1 else 60


@deserialize_to_instance
class UnknownUser(Exception):
    """Ops: no user with that email address."""


@deserialize_to_instance
class Busy(Exception):
    """Auth is hashing as many passwords as it allows at once. args: (message, retry_after_seconds)"""

    @property
    def retry_after(self):
        return int(self.args[1]) if len(self.args) > 1 else 1


@deserialize_to_instance
class WeakPassword(InvalidInput):
    """A password outside 8..1024 characters, or among commonly used ones."""


@deserialize_to_instance
class EmailUnverified(Exception):
    """The password was right, but the address is not confirmed yet."""


@deserialize_to_instance
class WrongPassword(Exception):
    """The current password given to change the password or delete the account is wrong."""


@deserialize_to_instance
class InvalidLink(Exception):
    """A verification or reset token that is unknown, used, replaced or expired."""


@deserialize_to_instance
class UnknownApiToken(Exception):
    """No API token with that id among the caller's."""


@deserialize_to_instance
class TooManyApiTokens(Exception):
    """The account holds as many API tokens as it may (api_tokens.MAX_PER_USER)."""
