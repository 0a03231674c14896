"""Names shared by every service: events, config keys, job states. One place, no literals elsewhere."""

# service names (nameko `name` attributes, also the event sources)
GATEWAY = "gateway"
AUTH = "auth"
CONVERTER = "converter"
NOTIFICATION = "notification"

# events (source.event_type)
VIDEO_UPLOADED = "video_uploaded"      # gateway -> converter
MP3_READY = "mp3_ready"                # converter -> notification
CONVERSION_FAILED = "conversion_failed"  # converter -> notification
ACCOUNT_EMAIL = "account_email"        # auth -> notification: kind, email, token (for the link)

# kinds of account email
MAIL_VERIFY = "verify"    # confirm a new address: PUBLIC_URL/verify?token=
MAIL_NOTICE = "notice"    # someone registered an address that has an account already
MAIL_RESET = "reset"      # a password-reset link: PUBLIC_URL/reset?token=
ACCOUNT_MAILS = (MAIL_VERIFY, MAIL_NOTICE, MAIL_RESET)

# job states visible through the API
QUEUED = "queued"
CONVERTING = "converting"
DONE = "done"
FAILED = "failed"
# internal state while the upload is still streaming into GridFS (never shown to users)
UPLOADING = "uploading"
FINISHED_STATES = (DONE, FAILED)
# a user's jobs at once, counted against USER_MAX_ACTIVE_JOBS
ACTIVE_STATES = (UPLOADING, QUEUED, CONVERTING)
# a queued job whose event has not led to a conversion after this long is dispatched again (it may
# wait its turn in the queue meanwhile: a second event is harmless, but useless)
REDISPATCH_AFTER = 120
# the same for an owed outcome email (its event is handled within milliseconds)
EMAIL_REDISPATCH_AFTER = 15
# a job outcome notification has not taken over by then is announced again by a converter's sweeper
# (the converter died before dispatching its event, or the event was lost)
ANNOUNCE_AFTER = 15

# notification states of the outcome email of a job (`notify`, for the outcome `notify_outcome`)
NOTIFY_PENDING = "pending"
NOTIFY_SENDING = "sending"
NOTIFY_SENT = "sent"
NOTIFY_GAVE_UP = "gave_up"

# GridFS buckets
VIDEOS_BUCKET = "videos"
MP3S_BUCKET = "mp3s"
JOBS_COLLECTION = "jobs"
# one document per user: the ids of their active jobs (the USER_MAX_ACTIVE_JOBS slots)
SLOTS_COLLECTION = "job_slots"

# webhooks (notification's): registrations, and one delivery per outcome and webhook
WEBHOOKS_COLLECTION = "webhooks"
DELIVERIES_COLLECTION = "webhook_deliveries"
JOB_FINISHED = "job.finished"   # a job's MP3 is ready
JOB_FAILED = "job.failed"       # a job's conversion failed
WEBHOOK_EVENTS = (JOB_FINISHED, JOB_FAILED)
# states of a webhook delivery
DELIVERY_PENDING = "pending"      # due at `next_attempt_at`
DELIVERY_SENDING = "sending"      # an attempt in progress (under a lease)
DELIVERY_DELIVERED = "delivered"  # a 2xx answered
DELIVERY_FAILED = "failed"        # given up after WEBHOOK_RETRY_HOURS
