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

# job states visible through the API
QUEUED = "queued"
CONVERTING = "converting"
DONE = "done"
FAILED = "failed"
# internal state while the upload is still streaming into GridFS (never shown to users)
UPLOADING = "uploading"
FINISHED_STATES = (DONE, FAILED)

# notification states of a job outcome
NOTIFY_PENDING = "pending"
NOTIFY_SENDING = "sending"
NOTIFY_SENT = "sent"
NOTIFY_GAVE_UP = "gave_up"

# config keys (config/*.yaml, values from the environment)
CFG_MONGO_URI = "MONGO_URI"
CFG_MONGO_DB = "MONGO_DB"
CFG_PUBLIC_URL = "PUBLIC_URL"
CFG_JWT_SECRET = "JWT_SECRET"
CFG_JWT_TTL = "JWT_TTL"
CFG_MAX_UPLOAD_BYTES = "MAX_UPLOAD_BYTES"
CFG_ALLOW_REGISTRATION = "ALLOW_REGISTRATION"
CFG_AUTH_RPC_TIMEOUT = "AUTH_RPC_TIMEOUT"
CFG_SMTP = "SMTP"
CFG_MAIL_FROM = "MAIL_FROM"
CFG_CONVERT_TIMEOUT = "CONVERT_TIMEOUT"
CFG_MAX_DURATION = "MAX_DURATION"
CFG_MP3_QUALITY = "MP3_QUALITY"
CFG_FFMPEG = "FFMPEG"
CFG_FFPROBE = "FFPROBE"
CFG_LEASE_SECONDS = "LEASE_SECONDS"
CFG_MAX_ATTEMPTS = "MAX_ATTEMPTS"
CFG_UPLOAD_TIMEOUT = "UPLOAD_TIMEOUT"
CFG_QUEUE_TYPE = "RABBIT_QUEUE_TYPE"
CFG_LOGIN_MAX_FAILURES = "LOGIN_MAX_FAILURES"
CFG_LOGIN_LOCKOUT = "LOGIN_LOCKOUT_SECONDS"
CFG_HEARTBEAT_DIR = "HEARTBEAT_DIR"

# GridFS buckets
VIDEOS_BUCKET = "videos"
MP3S_BUCKET = "mp3s"
JOBS_COLLECTION = "jobs"
