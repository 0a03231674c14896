"""auth: users, passwords and tokens over Nameko RPC."""
from nameko.rpc import rpc

from services.auth import users
from services.auth.dependencies import JWTTokens, PasswordHashing, UsersDatabase
from services.auth.exceptions import RegistrationClosed
from services.auth.models import Base
from services.auth.settings import AuthSettings
from services.common import constants as c
from services.common.heartbeat import Heartbeat


class AuthService:
    name = c.AUTH

    settings = AuthSettings()
    heartbeat = Heartbeat()
    db = UsersDatabase(Base)
    passwords = PasswordHashing()
    tokens = JWTTokens()

    @rpc
    def ping(self):
        return "pong"

    @rpc
    def create_user(self, email, password):
        """Ops: create a user whether or not registration is open."""
        return users.create_user(self.db.session, self.passwords, email, password)

    @rpc
    def register(self, email, password):
        if not self.settings.ALLOW_REGISTRATION:
            raise RegistrationClosed("Registration is closed on this server.")
        return users.create_user(self.db.session, self.passwords, email, password)

    @rpc
    def login(self, email, password):
        email = users.authenticate(
            self.db.session, self.passwords, email, password,
            max_failures=self.settings.LOGIN_MAX_FAILURES,
            lockout=self.settings.LOGIN_LOCKOUT_SECONDS)
        return {"token": self.tokens.issue(email), "token_type": "Bearer",
                "expires_in": self.tokens.ttl}

    @rpc
    def validate_token(self, token):
        return {"email": self.tokens.check(token)}
