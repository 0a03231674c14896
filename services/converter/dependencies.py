"""Converter providers: the ffmpeg encoder, configured once per container."""
import os
import tempfile

from nameko.extensions import DependencyProvider

from services.converter.limits import ChildLimits
from services.converter.media.encoder import Encoder, which
from services.converter.settings import ConverterSettings


class FFmpegEncoder(DependencyProvider):
    def setup(self):
        settings = ConverterSettings.of(self.container)
        self.tmp_dir = tempfile.mkdtemp(prefix="mp3svc-converter-")
        self.encoder = Encoder(
            ffmpeg_bin=which(settings.FFMPEG), ffprobe_bin=which(settings.FFPROBE),
            quality=settings.MP3_QUALITY, timeout=settings.CONVERT_TIMEOUT,
            max_duration=settings.MAX_DURATION, tmp_dir=self.tmp_dir,
            limits=ChildLimits.from_settings(settings), warm=True)

    def start(self):
        self.encoder.prepare()

    def stop(self):
        self._cleanup()

    def kill(self):
        self._cleanup()

    def _cleanup(self):
        self.encoder.close()
        for name in os.listdir(self.tmp_dir):
            try:
                os.unlink(os.path.join(self.tmp_dir, name))
            except OSError:
                pass
        try:
            os.rmdir(self.tmp_dir)
        except OSError:
            pass

    def get_dependency(self, worker_ctx):
        return self.encoder
