"""Fixed-window counters in the users database, each step one atomic statement, so that however
many requests arrive at once each gets its own number."""
import datetime

from sqlalchemy import and_, case, delete, null, or_, update
from sqlalchemy.exc import IntegrityError

from services.auth.exceptions import TooManyAttempts
from services.auth.models import Counter
from services.common.utils import utcnow

COUNTERS = Counter.__table__


def count(session, key, seconds):
    """(count in the current window, window start, locked until) after counting one more: a
    single UPDATE ... RETURNING (SQLite >= 3.35, PostgreSQL). A window that ended, or whose lock
    ended, starts over at 1."""
    now = utcnow()
    window = datetime.timedelta(seconds=seconds)
    stale = or_(COUNTERS.c.locked_until <= now,
                and_(COUNTERS.c.locked_until.is_(None), COUNTERS.c.window_start < now - window))
    statement = (
        update(COUNTERS).where(COUNTERS.c.key == key)
        .values(count=case((stale, 1), else_=COUNTERS.c.count + 1),
                window_start=case((stale, now), else_=COUNTERS.c.window_start),
                locked_until=case((stale, null()), else_=COUNTERS.c.locked_until))
        .returning(COUNTERS.c.count, COUNTERS.c.window_start, COUNTERS.c.locked_until))
    for _ in range(3):
        row = session.execute(statement).first()
        session.commit()
        if row is not None:
            return tuple(row)
        try:  # the first count for this key
            session.execute(COUNTERS.insert().values(key=key, count=1, window_start=now))
            session.commit()
            return 1, now, None
        except IntegrityError:  # a concurrent first count inserted it: count on that row
            session.rollback()
    raise TooManyAttempts("Too many concurrent attempts; try again later.", 1)


def within(session, key, limit, seconds):
    """Count one and say whether it is within `limit` per window (budgets: emails per address)."""
    return count(session, key, seconds)[0] <= limit


def retry_after(state, seconds, limit):
    """Seconds until `state` (as `count` returns it) admits another attempt; 0 when it does now."""
    number, window_start, locked_until = state
    now = utcnow()
    if locked_until and locked_until > now:
        until = locked_until
    elif number > limit:
        until = window_start + datetime.timedelta(seconds=seconds)
    else:
        return 0
    return max(1, int((until - now).total_seconds()) + 1)


def lock(session, key, seconds):
    session.execute(update(COUNTERS).where(COUNTERS.c.key == key).values(
        locked_until=utcnow() + datetime.timedelta(seconds=seconds)))
    session.commit()


def give_back(session, keys):
    """Uncount one from each key (an attempt that turned out right, or was never judged)."""
    if keys:
        session.execute(update(COUNTERS).where(COUNTERS.c.key.in_(keys), COUNTERS.c.count > 0)
                        .values(count=COUNTERS.c.count - 1))
        session.commit()


def clear(session, *keys):
    session.execute(delete(COUNTERS).where(COUNTERS.c.key.in_(keys)))
    session.commit()
