"""auth: users, passwords and tokens over Nameko RPC."""
from nameko.rpc import rpc

from services.auth import users
from services.auth.metrics import counting_login
from services.auth.dependencies import JWTTokens, PasswordHashing, UsersDatabase
from services.auth.exceptions import RegistrationClosed
from services.auth.models import Base
from services.auth.settings import AuthSettings
from services.common import constants as c
from services.common.heartbeat import Heartbeat
from services.common.logs import LogContext
from services.common.metrics import MetricsServer


class AuthService:
    name = c.AUTH

    settings = AuthSettings()
    heartbeat = Heartbeat()
    metrics_server = MetricsServer(AuthSettings)
    log_context = LogContext()
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
        with counting_login():
            email = users.authenticate(
                self.db.session, self.passwords, email, password,
                max_failures=self.settings.LOGIN_MAX_FAILURES,
                lockout=self.settings.LOGIN_LOCKOUT_SECONDS)
        return {"token": self.tokens.issue(email), "token_type": "Bearer",
                "expires_in": self.tokens.ttl}

    @rpc
    def validate_token(self, token):
        """The token's user, while the account exists and is enabled (one indexed lookup)."""
        return {"email": users.check_account(self.db.session, self.tokens.check(token))}

    # --- ops (nameko shell); arguments are checked like HTTP input --------------------------
    @rpc
    def disable_user(self, email):
        """Refuse the user's logins; their tokens stop working at once."""
        return users.disable_user(self.db.session, email)

    @rpc
    def enable_user(self, email):
        return users.enable_user(self.db.session, email)

    @rpc
    def delete_user(self, email):
        """The account only: `gateway.delete_user` removes it with every job and file of theirs."""
        return users.delete_user(self.db.session, email)

    @rpc
    def summary(self):
        """{"users": n, "disabled": n}"""
        return users.summary(self.db.session)
