class ConversionError(Exception):
    """The upload cannot be converted, whatever we retry. args[0] is a sentence for the user."""


class TransientError(Exception):
    """Something we depend on failed (MongoDB, disk); the job is retried later."""


class LeaseLost(Exception):
    """Another converter took the job over (ours stopped renewing the lease in time)."""


class ConversionAborted(Exception):
    """The conversion was stopped from outside (the lease was lost): no outcome to record."""
