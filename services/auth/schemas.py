"""Validation of what users send to auth."""
import re

from services.auth.exceptions import InvalidInput

EMAIL_RE = re.compile(r"^[^@\s\x00-\x1f\x7f]{1,64}@[^@\s\x00-\x1f\x7f]+\.[^@\s\x00-\x1f\x7f]+$")
PASSWORD_MIN, PASSWORD_MAX = 8, 1024


def clean_email(email):
    if not isinstance(email, str):
        raise InvalidInput("The email address is missing.")
    email = email.strip()
    if len(email) > 254 or not EMAIL_RE.match(email):
        raise InvalidInput("That is not a valid email address.")
    local, domain = email.rsplit("@", 1)
    return "%s@%s" % (local, domain.lower())


def clean_password(password):
    if not isinstance(password, str):
        raise InvalidInput("The password is missing.")
    if not PASSWORD_MIN <= len(password) <= PASSWORD_MAX:
        raise InvalidInput("The password must be %d to %d characters long."
                           % (PASSWORD_MIN, PASSWORD_MAX))
    return password
