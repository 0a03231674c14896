"""mp3svc: command-line client of the video-to-MP3 conversion service."""
__version__ = "0.1.0"
