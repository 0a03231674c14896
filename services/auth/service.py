"""auth: users, passwords and tokens over Nameko RPC."""
from nameko.rpc import rpc

from services.auth import accounts, api_tokens, sessions, users
from services.auth.metrics import counting_login
from services.auth.dependencies import JWTTokens, PasswordHashing, UsersDatabase
from services.auth.exceptions import InvalidToken, RegistrationClosed
from services.auth.models import Base
from services.auth.settings import AuthSettings
from services.common import constants as c
from services.common.heartbeat import Heartbeat
from services.common.logs import LogContext
from services.common.messaging import EventDispatcher
from services.common.metrics import MetricsServer
from services.common.utils import isoformat


class AuthService:
    name = c.AUTH

    settings = AuthSettings()
    heartbeat = Heartbeat()
    metrics_server = MetricsServer(AuthSettings)
    log_context = LogContext()
    db = UsersDatabase(Base)
    passwords = PasswordHashing()
    tokens = JWTTokens()
    dispatch = EventDispatcher()

    @rpc
    def ping(self):
        return "pong"

    def _mail(self, kind, email, token=None, expires_at=None):
        """An account email, rendered and sent by notification: the raw one-time token only for
        the link it mails (auth stores its hash), and when the link expires."""
        self.dispatch(c.ACCOUNT_EMAIL, {"kind": kind, "email": email, "token": token,
                                        "expires_at": isoformat(expires_at)})

    # --- accounts -------------------------------------------------------------------------------
    @rpc
    def register(self, email, password):
        """{"email", "status": "verification_sent"} for a new and for a taken address alike."""
        if not self.settings.ALLOW_REGISTRATION:
            raise RegistrationClosed("Registration is closed on this server.")
        return accounts.register(self.db.session, self.passwords, self._mail, self.settings,
                                 email, password)

    @rpc
    def verify_email(self, token):
        return accounts.verify(self.db.session, token)

    @rpc
    def resend_verification(self, email):
        return accounts.resend(self.db.session, self._mail, self.settings, email)

    @rpc
    def forgot_password(self, email):
        return accounts.forgot(self.db.session, self._mail, self.settings, email)

    @rpc
    def reset_password(self, token, password):
        return accounts.reset(self.db.session, self.passwords, token, password)

    @rpc
    def change_password(self, token, current_password, new_password, client=None):
        """A new password; every token of the account ends and the caller gets a new one."""
        user = sessions.check(self.db.session, self.tokens, token)
        users.confirm_password(self.db.session, self.passwords, self.settings, user,
                               current_password, client)
        return accounts.change_password(self.db.session, self.passwords, self.tokens,
                                        user["user_id"], new_password)

    @rpc
    def confirm_password(self, token, password, client=None):
        """The token's account when `password` is its password (before the owner deletes it)."""
        user = sessions.check(self.db.session, self.tokens, token)
        users.confirm_password(self.db.session, self.passwords, self.settings, user, password,
                               client)
        return user

    # --- sessions -------------------------------------------------------------------------------
    @rpc
    def login(self, email, password, client=None):
        """A token of a new session. `client`: the caller's address (the gateway's view of it,
        honouring TRUSTED_PROXIES), so guesses are counted per account and client address."""
        with counting_login():
            user_id, _ = users.authenticate(self.db.session, self.passwords, self.settings, email,
                                            password, client)
        return sessions.start(self.db.session, self.tokens, user_id)

    @rpc
    def validate_token(self, token):
        """{"email", "user_id", "scopes"} of a valid token: a login token (`scopes` None: it may do
        everything) while its session exists, or an API token (`mp3_...`: the list of its scopes)
        until it is revoked or expires; its account enabled. One query each."""
        if api_tokens.is_api_token(token):
            return api_tokens.check(self.db.session, token)
        return dict(sessions.check(self.db.session, self.tokens, token), scopes=None)

    @rpc
    def logout(self, token):
        """The token's session ends at once."""
        sessions.end(self.db.session, self.tokens, token)

    # --- API tokens: made, listed and revoked with a login token only -------------------------
    def _login_user(self, token):
        if api_tokens.is_api_token(token):
            raise InvalidToken("An API token cannot manage API tokens; use a login token.")
        return sessions.check(self.db.session, self.tokens, token)

    @rpc
    def create_api_token(self, token, name, scopes, expires_in_days=None):
        """{"id", "name", "scopes", "token", "created_at", "expires_at", "last_used_at"}: the
        secret `token` shown this once."""
        user = self._login_user(token)
        return api_tokens.create(self.db.session, user["user_id"], name, scopes, expires_in_days)

    @rpc
    def list_api_tokens(self, token):
        user = self._login_user(token)
        return api_tokens.listed(self.db.session, user["user_id"])

    @rpc
    def revoke_api_token(self, token, token_id):
        """The API token `token_id` of the caller stops working at once."""
        user = self._login_user(token)
        api_tokens.revoke(self.db.session, user["user_id"], token_id)

    # --- ops (nameko shell); arguments are checked like HTTP input --------------------------
    @rpc
    def create_user(self, email, password):
        """Ops: create a verified user whether or not registration is open."""
        return users.create_user(self.db.session, self.passwords, email, password)

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
        """{"users": n, "disabled": n, "unverified": n}"""
        return users.summary(self.db.session)
