"""What the converter reads from its configuration (defaults: config/converter.yaml)."""
from services.common.settings import Address, MongoSettings, Number, Text


class ConverterSettings(MongoSettings):
    CONVERTER_METRICS_ADDRESS = Address()
    FFMPEG = Text()
    FFPROBE = Text()
    MP3_QUALITY = Number(int, minimum=0, maximum=9)
    CONVERT_TIMEOUT = Number(float, minimum=1)
    MAX_DURATION = Number(float, minimum=1)
    LEASE_SECONDS = Number(int, minimum=2)
    MAX_ATTEMPTS = Number(int, minimum=1)
    # the gateway's per-user quota: an MP3 that would take its owner over it is not stored
    USER_QUOTA_BYTES = Number(int, minimum=1)
    # the gateway's: a conversion of an upload still arriving waits this long for its next byte
    UPLOAD_TIMEOUT = Number(int, minimum=60)
    # each ffmpeg/ffprobe child's resource limits (services/converter/limits.py); 0: off
    FFMPEG_MAX_MEMORY = Number(int, minimum=0)
    FFMPEG_MAX_CPU_SECONDS = Number(int, minimum=0)
    FFMPEG_MAX_FILE_BYTES = Number(int, minimum=0)
    FFMPEG_MAX_PROCESSES = Number(int, minimum=0)
