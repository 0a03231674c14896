"""Streaming multipart parser: the `file` part goes straight into the sink it is given (the video's
GridFS stream) as it arrives; the parser stores nothing itself and calls back into nothing.

Nothing is buffered beyond one read block: the decoder's buffer is bounded (a boundary-like line
that never ends is refused, not kept), as are part headers, non-file fields and the number of parts;
the size limit is enforced while streaming and from Content-Length before reading, so an oversized
upload is refused before it is stored. Per upload in flight: one READ_BLOCK, the decoder's buffer
and one GridFS chunk.
"""
import dataclasses

from werkzeug.exceptions import RequestEntityTooLarge
from werkzeug.http import parse_options_header
from werkzeug.sansio.multipart import Data, Epilogue, Field, File, MultipartDecoder, NeedData

from services.gateway.exceptions import BadRequest, EmptyFile, NoFile, TooLarge, TooManyFiles
from services.gateway.schemas import clean_filename

READ_BLOCK = 64 * 1024
FORM_OVERHEAD = 64 * 1024   # room for the multipart headers and small fields around the file
MAX_HEADER_BYTES = 8 * 1024  # one part's headers
MAX_FIELD_BYTES = 4 * 1024   # one non-file field
MAX_PARTS = 64
# what the decoder may hold between reads: a partial header block, or the tail of a line that
# may be the start of a boundary; a longer line without a newline is malformed input
MAX_DECODER_BUFFER = READ_BLOCK + MAX_HEADER_BYTES
FILE_FIELD = "file"


def too_large(max_bytes):
    return TooLarge("The upload is larger than the limit of %d bytes." % max_bytes)


def boundary_of(request):
    mimetype, options = parse_options_header(request.headers.get("Content-Type", ""))
    boundary = options.get("boundary")
    if mimetype != "multipart/form-data" or not boundary:
        raise BadRequest("Send the video as multipart/form-data in a field named 'file'.")
    return boundary.encode("latin-1")


def check_length(request, max_bytes):
    length = request.content_length
    if length is not None and length > max_bytes + FORM_OVERHEAD:
        raise too_large(max_bytes)


@dataclasses.dataclass(frozen=True)
class Form:
    """What a multipart upload carried: the file's name and size (its bytes went to the sink), and
    the other fields as text."""
    filename: str
    size: int
    fields: dict


class MultipartReceiver:
    """Parses one upload request, writing the `file` part's bytes to `sink.write`."""

    def __init__(self, max_bytes):
        self.max_bytes = max_bytes
        self.sink = None
        self.filename = None      # set once the `file` part began
        self.size = 0             # bytes of the `file` part written to the sink
        self.in_file = False
        self.field_bytes = 0      # all non-file fields
        self.part_bytes = 0       # the current non-file field
        self.parts = 0
        self.files = 0
        self.ignored_bytes = 0    # a file part in another field than `file`
        self.fields = {}          # the non-file fields: name -> text
        self.field_name = None

    def receive(self, request, sink):
        """Stream the request's `file` part into `sink` (its `write`); returns the `Form`. On an
        exception the caller aborts what it gave as the sink."""
        self.sink = sink
        check_length(request, self.max_bytes)
        decoder = MultipartDecoder(boundary_of(request), max_form_memory_size=MAX_DECODER_BUFFER)
        stream = request.environ["wsgi.input"]
        try:
            while True:
                block = stream.read(READ_BLOCK)
                decoder.receive_data(block or None)
                if self._drain(decoder, bool(block)):
                    break
        except RequestEntityTooLarge:
            raise BadRequest("The multipart body is malformed: a line that looks like a boundary "
                             "never ends.") from None
        except (ValueError, IOError) as exc:
            # malformed multipart, undecodable headers, the client went away mid-upload
            raise BadRequest("The upload could not be read (%s)." % exc) from exc
        if self.filename is None:
            raise NoFile("No file: send the video in a multipart field named 'file'.")
        if self.size == 0:
            raise EmptyFile("The uploaded file is empty.")
        return Form(self.filename, self.size, self._text_fields())

    def fields_so_far(self):
        """The non-file fields received so far, as text (those before the file, while it streams)."""
        return self._text_fields()

    def _text_fields(self):
        """The non-file fields as text (UTF-8, as browsers and curl send them)."""
        try:
            return {name: value.decode("utf-8") for name, value in self.fields.items()}
        except UnicodeDecodeError:
            raise BadRequest("The form fields must be UTF-8 text.") from None

    def _drain(self, decoder, more_coming):
        """Handle the events decoded so far; True once the form is complete."""
        while True:
            event = decoder.next_event()
            if isinstance(event, Epilogue):
                return True
            if isinstance(event, NeedData):
                if not self.in_file and len(decoder.buffer) > MAX_HEADER_BYTES:
                    raise BadRequest("The multipart headers are too long.")
                if not more_coming:
                    raise BadRequest("The upload ended before the form was complete.")
                return False
            self._handle(event)

    def _handle(self, event):
        if isinstance(event, (File, Field)):
            self.parts += 1
            if self.parts > MAX_PARTS:
                raise BadRequest("The form has more than %d parts." % MAX_PARTS)
            self.part_bytes = 0
        if isinstance(event, File):
            if self.files:
                raise TooManyFiles("Send exactly one file per upload.")
            self.files += 1
            if event.name == FILE_FIELD:
                self.filename = clean_filename(event.filename)
            self.in_file = True
        elif isinstance(event, Field):
            self.in_file = False
            if event.name in self.fields:
                raise BadRequest("The form field '%s' is given twice." % event.name[:64])
            self.field_name = event.name
            self.fields[event.name] = b""
        elif isinstance(event, Data):
            if self.in_file and self.filename is None:  # a file in another field: not stored
                self.ignored_bytes += len(event.data)
                if self.ignored_bytes > self.max_bytes:
                    raise too_large(self.max_bytes)
            elif self.in_file:
                if event.data:
                    self.sink.write(event.data)
                    self.size += len(event.data)
                    if self.size > self.max_bytes:
                        raise too_large(self.max_bytes)
            else:
                self.part_bytes += len(event.data)
                self.field_bytes += len(event.data)
                if self.part_bytes > MAX_FIELD_BYTES:
                    raise BadRequest("A form field is longer than %d bytes." % MAX_FIELD_BYTES)
                if self.field_bytes > FORM_OVERHEAD:
                    raise BadRequest("The form has too much data besides the file.")
                self.fields[self.field_name] += event.data
            if not event.more_data:
                self.in_file = False
