"""Converter providers: the ffmpeg encoder, configured once per container."""
import os
import tempfile

from nameko.extensions import DependencyProvider

from services.common import constants as c
from services.converter.media import Encoder, which


class FFmpegEncoder(DependencyProvider):
    def setup(self):
        config = self.container.config
        self.tmp_dir = tempfile.mkdtemp(prefix="mp3svc-converter-")
        self.encoder = Encoder(
            ffmpeg_bin=which(config.get(c.CFG_FFMPEG) or "ffmpeg"),
            ffprobe_bin=which(config.get(c.CFG_FFPROBE) or "ffprobe"),
            quality=int(config.get(c.CFG_MP3_QUALITY) or 2),
            timeout=float(config.get(c.CFG_CONVERT_TIMEOUT) or 1500),
            max_duration=float(config.get(c.CFG_MAX_DURATION) or 4 * 3600),
            tmp_dir=self.tmp_dir)

    def stop(self):
        self._cleanup()

    def kill(self):
        self._cleanup()

    def _cleanup(self):
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
