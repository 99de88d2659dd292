"""mpegcoder: mpegCoder's API (MpegDecoder, MpegServer, MpegClient) over the mpegcoder crates.

Frames are numpy ``uint8`` arrays in RGB: one frame is ``(H, W, 3)``, a batch ``(N, H, W, 3)``.
Bit rates are in kilobits per second (1 kb/s = 1000 bit/s) everywhere in this package, as in
mpegCoder's documentation: ``bitRate`` of ``getParameter()`` and of ``setParameter()``.
Every call that waits (opening, decoding, encoding, pacing, network) releases the GIL.
Failures raise :class:`MpegError` with the one-line message the ``mpegcoder`` command prints;
``FFmpegSetup()`` returns ``False`` instead and puts the reason in ``str(obj)``.
"""

from . import _native
from ._native import MpegError, __version__, version

__all__ = ["MpegDecoder", "MpegServer", "MpegClient", "MpegError", "version", "__version__"]


class MpegDecoder(_native.MpegDecoder):
    __doc__ = _native.MpegDecoder.__doc__
    __slots__ = ()

    ffmpeg_setup = _native.MpegDecoder.FFmpegSetup
    set_parameter = _native.MpegDecoder.setParameter
    get_parameter = _native.MpegDecoder.getParameter
    extract_frame = _native.MpegDecoder.ExtractFrame
    extract_frame_time = _native.MpegDecoder.ExtractFrame_Time
    extract_gop = _native.MpegDecoder.ExtractGOP
    extract_gop_time = _native.MpegDecoder.ExtractGOP_Time
    reset_gop_position = _native.MpegDecoder.ResetGOPPosition
    set_gop_position = _native.MpegDecoder.setGOPPosition


class MpegServer(_native.MpegServer):
    __doc__ = _native.MpegServer.__doc__
    __slots__ = ()

    set_parameter = _native.MpegServer.setParameter
    get_parameter = _native.MpegServer.getParameter
    ffmpeg_setup = _native.MpegServer.FFmpegSetup
    serve_frame = _native.MpegServer.ServeFrame
    serve_frame_block = _native.MpegServer.ServeFrameBlock
    serve_video = _native.MpegServer.ServeVideo
    ffmpeg_close = _native.MpegServer.FFmpegClose


class MpegClient(_native.MpegClient):
    __doc__ = _native.MpegClient.__doc__
    __slots__ = ()

    set_parameter = _native.MpegClient.setParameter
    get_parameter = _native.MpegClient.getParameter
    ffmpeg_setup = _native.MpegClient.FFmpegSetup
    extract_frame = _native.MpegClient.ExtractFrame


for _cls in (MpegDecoder, MpegServer, MpegClient):
    _cls.__module__ = __name__
del _cls
