"""Validation of what users send to auth."""
import functools
import re

from services.auth.exceptions import InvalidInput, WeakPassword
from services.common.scopes import ALL as ALL_SCOPES

# One plain mailbox, `local@domain`: the local part a dot-atom (RFC 5322: no quoted strings, no
# spaces, commas, angle brackets or display names), the domain DNS labels with at least one dot.
# Everything else is refused, so an account always mails exactly one recipient.
ATOM = r"[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+"
LABEL = r"[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?"
EMAIL_RE = re.compile(r"(?P<local>%s(?:\.%s)*)@(?P<domain>%s(?:\.%s)+)" % (ATOM, ATOM, LABEL, LABEL),
                      re.ASCII)
MAX_LOCAL, MAX_EMAIL = 64, 254
CONTROL_RE = re.compile(r"[\x00-\x1f\x7f]")
PASSWORD_MIN, PASSWORD_MAX = 8, 1024


def clean_email(email):
    """The address as stored (domain lower-cased), or InvalidInput."""
    if not isinstance(email, str):
        raise InvalidInput("The email address is missing.")
    email = email.strip()
    match = EMAIL_RE.fullmatch(email) if len(email) <= MAX_EMAIL else None
    if match is None or len(match.group("local")) > MAX_LOCAL:
        raise InvalidInput("That is not a valid email address: give one plain mailbox like "
                           "name@example.com (no display name, commas, quotes or spaces).")
    return "%s@%s" % (match.group("local"), match.group("domain").lower())


def lookup_email(email):
    """An address to look an existing account up by (logins, ops): a string that may predate the
    mailbox rule above, normalised the same way (domain lower-cased); InvalidInput otherwise."""
    if not isinstance(email, str):
        raise InvalidInput("The email address must be a string.")
    email = email.strip()
    if not 3 <= len(email) <= MAX_EMAIL or "@" not in email or CONTROL_RE.search(email):
        raise InvalidInput("That is not a valid email address.")
    local, domain = email.rsplit("@", 1)
    return "%s@%s" % (local, domain.lower())


@functools.lru_cache(maxsize=1)
def common_passwords():
    """The 30,000 most common passwords of zxcvbn's frequency list, lower-cased."""
    from zxcvbn.frequency_lists import FREQUENCY_LISTS
    return frozenset(word.lower() for word in FREQUENCY_LISTS["passwords"])


def clean_password(password):
    """A new password: 8..1024 characters and not among commonly used ones (any case)."""
    if not isinstance(password, str):
        raise InvalidInput("The password is missing.")
    if not PASSWORD_MIN <= len(password) <= PASSWORD_MAX:
        raise WeakPassword("The password must be %d to %d characters long."
                           % (PASSWORD_MIN, PASSWORD_MAX))
    if password.lower() in common_passwords():
        raise WeakPassword("That password is among the most commonly used ones; choose another.")
    return password


TOKEN_NAME_MAX = 100
TOKENS_PER_USER = 100   # API tokens one account may hold
TOKEN_DAYS_MAX = 3650
TOKEN_ID_HEX = 16   # an API token's public id: 16 hexadecimal digits
TOKEN_ID_RE = re.compile(r"[0-9a-f]{%d}" % TOKEN_ID_HEX)


def clean_token_request(name, scopes, expires_in_days=None):
    """(name, scopes in services/common/scopes.ALL's order, days or None) of a new API token: a
    name of 1..100 characters, a non-empty list of known scopes, and 1..3650 days or none."""
    if not isinstance(name, str) or not 0 < len(name.strip()) <= TOKEN_NAME_MAX \
            or CONTROL_RE.search(name):
        raise InvalidInput("The token's name must be 1 to %d characters." % TOKEN_NAME_MAX)
    if not isinstance(scopes, (list, tuple)) or not scopes or not all(
            isinstance(scope, str) and scope in ALL_SCOPES for scope in scopes):
        raise InvalidInput("scopes must be a non-empty list of: %s." % ", ".join(ALL_SCOPES))
    if expires_in_days is not None and (
            isinstance(expires_in_days, bool) or not isinstance(expires_in_days, int)
            or not 1 <= expires_in_days <= TOKEN_DAYS_MAX):
        raise InvalidInput("expires_in_days must be a whole number of days from 1 to %d."
                           % TOKEN_DAYS_MAX)
    return name.strip(), [scope for scope in ALL_SCOPES if scope in scopes], expires_in_days
