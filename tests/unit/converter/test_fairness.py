"""fairness.py: which job a converter takes next."""
import datetime

from services.converter import fairness

T0 = datetime.datetime(2026, 1, 1)


def test_the_least_served_owner_goes_first():
    busy = {"a": 1}
    served = {"b": T0, "c": T0 - datetime.timedelta(minutes=1)}
    assert fairness.order(["a", "b", "c", "d"], busy, served) == ["d", "c", "b", "a"]


def test_a_job_still_uploading_is_taken_only_while_its_owner_has_nothing_converting():
    assert fairness.may_take(upload_open=False, converting=3)
    assert fairness.may_take(upload_open=True, converting=0)
    assert not fairness.may_take(upload_open=True, converting=1)
