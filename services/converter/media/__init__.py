"""ffmpeg and ffprobe on untrusted uploads, one module per concern.

One conversion (encoder.py): probe the upload (probe.py; refused when too long), measure its
loudness when asked (loudness.py, first pass of EBU R128 loudnorm), encode (or copy an MP3 stream),
grab a cover picture (cover.py), then write the ID3 tag with mutagen (services/converter/tags.py).
Every argv comes from args.py, a pure function of the options and the probe; every process runs
under process.py's supervisor. An MP4 whose index follows its media (boxes.py) is spooled to a
temporary file first (tempfiles.py). What a user reads when it fails: errors.py.
Nothing from the upload's metadata reaches a command line or a path: argv holds only numbers and
our own names.
"""
