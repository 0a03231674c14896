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
