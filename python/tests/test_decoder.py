"""MpegDecoder: every method, against the facts ffprobe and the ffmpeg CLI give of the clip.

The clip (conftest): 60 frames of 320x240 at 25 fps, key frames at 0, 25 and 50 (GOPs of 25,
25 and 10 frames), B-frames. ``clip.frames`` is mpegcoder's sequential decode (ExtractGOP until
None); the tests here check that decode against ffprobe and ffmpeg, and random access against
it.
"""

import pickle
import subprocess

import numpy as np
import pytest

import mpegcoder
from conftest import FFMPEG_TOOLS, ffmpeg_rgb_frames, psnr, require


@pytest.fixture
def dec(clip):
    d = mpegcoder.MpegDecoder()
    assert d.FFmpegSetup(str(clip.path)) is True, str(d)
    yield d
    d.clear()


def _gops(d):
    out = []
    while True:
        gop = d.ExtractGOP()
        if gop is None:
            return out
        out.append(gop)


# --------------------------------------------------------------------------------------------
# Opening and its failures


def test_setup_returns_true_and_str_describes_the_video(clip):
    d = mpegcoder.MpegDecoder()
    assert d.FFmpegSetup(str(clip.path)) is True
    text = str(d)
    assert clip.path.name in text and "h264" in text and "320x240" in text, text


def test_constructor_with_a_path_opens(clip):
    d = mpegcoder.MpegDecoder(str(clip.path))
    frames = d.ExtractFrame(0, 3)
    assert np.array_equal(frames, clip.frames[:3])


def test_setup_accepts_a_path_object(clip):
    d = mpegcoder.MpegDecoder()
    assert d.FFmpegSetup(clip.path) is True, str(d)
    assert np.array_equal(d.ExtractFrame(5, 1), clip.frames[5:6])


def test_missing_file_gives_false_and_the_reason(tmp_path):
    missing = tmp_path / "no-such-video.mp4"
    d = mpegcoder.MpegDecoder()
    assert d.FFmpegSetup(str(missing)) is False
    reason = str(d)
    assert "no-such-video.mp4" in reason, reason
    assert "no such file" in reason.lower() or "not found" in reason.lower(), reason


def test_constructor_with_a_missing_file_does_not_raise(tmp_path):
    d = mpegcoder.MpegDecoder(str(tmp_path / "gone.mp4"))
    assert "gone.mp4" in str(d)
    with pytest.raises(mpegcoder.MpegError):
        d.ExtractFrame()


@pytest.mark.parametrize("kind", ["junk", "empty", "audio-only"])
def test_a_file_without_video_gives_false_and_the_reason(tmp_path, kind):
    path = tmp_path / f"{kind}.mp4"
    if kind == "junk":
        path.write_bytes(np.random.default_rng(7).integers(0, 256, 20000, np.uint8).tobytes())
    elif kind == "empty":
        path.write_bytes(b"")
    else:
        require("audio-only file", FFMPEG_TOOLS)
        path = tmp_path / "tone.wav"
        subprocess.run(
            ["ffmpeg", "-v", "error", "-nostdin", "-y", "-f", "lavfi", "-i",
             "sine=frequency=440:duration=1", str(path)],
            check=True,
        )
    d = mpegcoder.MpegDecoder()
    assert d.FFmpegSetup(str(path)) is False, str(d)
    assert path.name in str(d), str(d)
    with pytest.raises(mpegcoder.MpegError):
        d.ExtractGOP()


def test_setup_without_any_path_gives_false():
    d = mpegcoder.MpegDecoder()
    assert d.FFmpegSetup() is False
    assert str(d).strip()


@pytest.mark.parametrize(
    "call",
    [
        lambda d: d.ExtractFrame(),
        lambda d: d.ExtractFrame(0, 5),
        lambda d: d.ExtractFrame_Time(0.5),
        lambda d: d.ExtractFrameByTime(0.5),
        lambda d: d.ExtractGOP(),
        lambda d: d.ExtractGOP(3),
        lambda d: d.ExtractGOP_Time(1.0),
        lambda d: d.ExtractGOPByTime(1.0),
    ],
    ids=["frame", "frames", "frame-time", "frame-by-time", "gop", "gop-pos", "gop-time",
         "gop-by-time"],
)
def test_extract_before_setup_raises(call):
    d = mpegcoder.MpegDecoder()
    with pytest.raises(mpegcoder.MpegError, match="not set up"):
        call(d)


def test_gop_positioning_before_setup_raises():
    d = mpegcoder.MpegDecoder()
    with pytest.raises(mpegcoder.MpegError):
        d.ResetGOPPosition(framePos=3)
    with pytest.raises(mpegcoder.MpegError):
        d.setGOPPosition(3)


def test_mpeg_error_is_a_runtime_error():
    assert issubclass(mpegcoder.MpegError, RuntimeError)
    d = mpegcoder.MpegDecoder()
    with pytest.raises(RuntimeError) as info:
        d.ExtractFrame()
    assert "\n" not in str(info.value)


# --------------------------------------------------------------------------------------------
# Argument checks


@pytest.mark.parametrize(
    "call",
    [
        lambda d: d.ExtractFrame("0"),
        lambda d: d.ExtractFrame(0, "2"),
        lambda d: d.ExtractFrame_Time("now"),
        lambda d: d.ExtractGOP("first"),
        lambda d: d.setGOPPosition("3"),
        lambda d: d.setParameter(widthDst="wide"),
        lambda d: d.setParameter(nthread=2.5),
        lambda d: d.FFmpegSetup(12),
    ],
)
def test_wrong_argument_types_raise_type_error(dec, call):
    with pytest.raises(TypeError):
        call(dec)


@pytest.mark.parametrize(
    "call",
    [
        lambda d: d.ExtractFrame(-1),
        lambda d: d.ExtractFrame(0, -2),
        lambda d: d.ExtractFrame_Time(-1.0),
        lambda d: d.ExtractGOP(-5),
        lambda d: d.setGOPPosition(-1),
        lambda d: d.ResetGOPPosition(framePos=-1),
        lambda d: d.setParameter(widthDst=-320),
        lambda d: d.setParameter(heightDst=-1),
        lambda d: d.setParameter(nthread=-1),
    ],
)
def test_bad_values_raise_value_error(dec, call):
    with pytest.raises(ValueError):
        call(dec)


def test_positional_parameters_are_refused(dec):
    with pytest.raises(TypeError):
        dec.setParameter(160, 120)


# --------------------------------------------------------------------------------------------
# The sequential decode: ExtractGOP until None


def test_gops_partition_the_stream(clip, dec):
    gops = _gops(dec)
    assert [len(g) for g in gops] == [end - start for start, end in clip.gops()]
    allframes = np.concatenate(gops)
    # As many frames as ffprobe decodes, every frame once.
    assert allframes.shape == (clip.count, clip.height, clip.width, 3)
    assert allframes.dtype == np.uint8
    assert np.array_equal(allframes, clip.frames)
    assert dec.ExtractGOP() is None
    assert dec.ExtractGOP() is None


def test_sequential_decode_matches_ffmpeg(clip):
    # The ffmpeg CLI decodes and converts to RGB on its own: the same pictures, within
    # colour-conversion rounding.
    reference = ffmpeg_rgb_frames(clip.path, clip.width, clip.height)
    assert len(reference) == clip.count
    values = [psnr(a, b) for a, b in zip(clip.frames, reference)]
    assert min(values) > 35.0, f"PSNR against ffmpeg's decode: min {min(values):.1f} dB"
    # Each frame is ffmpeg's frame of the same number, not a neighbour's.
    for i in range(1, clip.count):
        assert psnr(clip.frames[i], reference[i]) > psnr(clip.frames[i], reference[i - 1])


def test_frames_are_contiguous_rgb(dec):
    gop = dec.ExtractGOP()
    assert gop.ndim == 4 and gop.shape[3] == 3
    assert gop.flags["C_CONTIGUOUS"]
    # testsrc2 has saturated colour bars: the channels differ (RGB, not grey).
    assert not np.array_equal(gop[0, ..., 0], gop[0, ..., 1])


def test_frame_count_is_the_last_extract(clip, dec):
    assert dec.getParameter("frameCount") == 0
    dec.ExtractGOP()
    assert dec.getParameter("frameCount") == clip.key_frames[1]
    dec.ExtractFrame(3, 7)
    assert dec.getParameter("frameCount") == 7
    dec.ExtractFrame(clip.count - 2, 10)
    assert dec.getParameter("frameCount") == 2


# --------------------------------------------------------------------------------------------
# Random access


@pytest.mark.parametrize(
    "pos,num",
    [(0, 1), (0, 60), (7, 5), (24, 3), (25, 1), (26, 30), (49, 2), (55, 5), (59, 1), (12, 0)],
)
def test_extract_frame_equals_the_sequential_decode(clip, dec, pos, num):
    frames = dec.ExtractFrame(pos, num)
    expected = clip.frames[pos:pos + num]
    if num == 0:
        assert frames is None or len(frames) == 0
        return
    assert frames.shape == expected.shape
    assert np.array_equal(frames, expected), f"ExtractFrame({pos}, {num})"


def test_extract_frame_in_any_order(clip, dec):
    # Backwards and forwards across GOPs, on one decoder.
    for pos in [40, 3, 59, 26, 25, 24, 0, 51, 10]:
        assert np.array_equal(dec.ExtractFrame(pos, 2), clip.frames[pos:pos + 2]), pos


def test_extract_frame_defaults(clip, dec):
    assert np.array_equal(dec.ExtractFrame(), clip.frames[:1])
    assert np.array_equal(dec.ExtractFrame(framePos=30), clip.frames[30:31])
    assert np.array_equal(dec.ExtractFrame(frameNum=4, framePos=2), clip.frames[2:6])


def test_extract_frame_stops_at_the_end(clip, dec):
    frames = dec.ExtractFrame(clip.count - 2, 10)
    assert np.array_equal(frames, clip.frames[-2:])


@pytest.mark.parametrize("offset", [0, 1, 1000])
def test_extract_frame_past_the_end_gives_none(clip, dec, offset):
    assert dec.ExtractFrame(clip.count + offset, 1) is None


@pytest.mark.parametrize("t,first", [(0.0, 0), (0.5, 12), (1.02, 25), (1.5, 37), (2.39, 59)])
def test_extract_frame_time_starts_at_the_frame_shown(clip, dec, t, first):
    frames = dec.ExtractFrame_Time(t, 3)
    assert np.array_equal(frames, clip.frames[first:first + 3]), f"ExtractFrame_Time({t}, 3)"
    alias = dec.ExtractFrameByTime(t, 3)
    assert np.array_equal(alias, frames)


def test_extract_frame_time_default_count(clip, dec):
    assert np.array_equal(dec.ExtractFrame_Time(0.9), clip.frames[22:23])


def test_extract_gop_at_a_frame(clip, dec):
    for pos in [0, 13, 24, 25, 30, 49, 50, 59]:
        start, end = next((s, e) for s, e in clip.gops() if s <= pos < e)
        gop = dec.ExtractGOP(pos)
        assert np.array_equal(gop, clip.frames[start:end]), f"ExtractGOP({pos})"


def test_extract_gop_at_a_frame_then_continues(clip, dec):
    gop = dec.ExtractGOP(30)
    assert np.array_equal(gop, clip.frames[25:50])
    assert np.array_equal(dec.ExtractGOP(), clip.frames[50:60])
    assert dec.ExtractGOP() is None


def test_extract_gop_time(clip, dec):
    assert np.array_equal(dec.ExtractGOP_Time(1.5), clip.frames[25:50])
    assert np.array_equal(dec.ExtractGOPByTime(0.3), clip.frames[0:25])
    assert np.array_equal(dec.ExtractGOP_Time(2.2), clip.frames[50:60])
    assert dec.ExtractGOP_Time() is None  # the next GOP: there is none after the last


def test_reset_gop_position(clip, dec):
    _gops(dec)
    assert dec.ExtractGOP() is None
    dec.ResetGOPPosition()
    assert np.array_equal(dec.ExtractGOP(), clip.frames[0:25])
    dec.ResetGOPPosition(framePos=37)
    assert np.array_equal(dec.ExtractGOP(), clip.frames[25:50])
    dec.ResetGOPPosition(timePos=2.1)
    assert np.array_equal(dec.ExtractGOP(), clip.frames[50:60])
    assert dec.ExtractGOP() is None
    dec.ResetGOPPosition(framePos=0)
    assert np.array_equal(np.concatenate(_gops(dec)), clip.frames)


def test_set_gop_position_int_is_a_frame_float_is_seconds(clip, dec):
    dec.setGOPPosition(1)  # frame 1: the first GOP
    assert np.array_equal(dec.ExtractGOP(), clip.frames[0:25])
    dec.setGOPPosition(1.0)  # 1 s: frame 25
    assert np.array_equal(dec.ExtractGOP(), clip.frames[25:50])
    dec.setGOPPosition(55)
    assert np.array_equal(dec.ExtractGOP(), clip.frames[50:60])
    dec.setGOPPosition(0.0)
    assert np.array_equal(dec.ExtractGOP(), clip.frames[0:25])
    dec.setGOPPosition(np.int64(26))
    assert np.array_equal(dec.ExtractGOP(), clip.frames[25:50])


# --------------------------------------------------------------------------------------------
# Scaling


def _box_half(frames):
    f = frames.astype(np.float64)
    return ((f[:, 0::2, 0::2] + f[:, 1::2, 0::2] + f[:, 0::2, 1::2] + f[:, 1::2, 1::2]) / 4
            ).round().astype(np.uint8)


def test_scaling_to_width_and_height(clip):
    d = mpegcoder.MpegDecoder()
    d.setParameter(widthDst=160, heightDst=120)
    assert d.FFmpegSetup(str(clip.path)), str(d)
    frames = d.ExtractFrame(0, 10)
    assert frames.shape == (10, 120, 160, 3)
    p = d.getParameter()
    assert (p["width"], p["height"]) == (160, 120)
    assert (p["widthSrc"], p["heightSrc"]) == (320, 240)
    assert (p["widthDst"], p["heightDst"]) == (160, 120)
    # The same pictures, scaled: close to a 2x2 average of the full-size frames.
    small = _box_half(clip.frames[:10])
    for i in range(10):
        assert psnr(frames[i], small[i]) > 22.0, i
    gop = d.ExtractGOP()
    assert gop.shape[1:] == (120, 160, 3)


def test_scaling_to_another_aspect(clip):
    d = mpegcoder.MpegDecoder()
    d.setParameter(widthDst=200, heightDst=100)
    assert d.FFmpegSetup(str(clip.path)), str(d)
    assert d.ExtractFrame(3, 2).shape == (2, 100, 200, 3)


def test_one_dimension_keeps_the_aspect_ratio(clip):
    d = mpegcoder.MpegDecoder()
    d.setParameter(widthDst=160)
    assert d.FFmpegSetup(str(clip.path)), str(d)
    assert d.ExtractFrame().shape == (1, 120, 160, 3)
    d.setParameter(widthDst=0, heightDst=60)
    assert d.FFmpegSetup(), str(d)
    assert d.ExtractFrame().shape == (1, 60, 80, 3)


def test_set_parameter_takes_effect_at_the_next_setup(clip, dec):
    dec.setParameter(widthDst=160, heightDst=120)
    assert dec.ExtractFrame().shape == (1, 240, 320, 3)
    assert dec.getParameter("widthDst") == 160
    assert dec.FFmpegSetup() is True
    assert dec.ExtractFrame().shape == (1, 120, 160, 3)
    dec.setParameter(widthDst=0, heightDst=0)
    assert dec.FFmpegSetup() is True
    assert np.array_equal(dec.ExtractFrame(), clip.frames[:1])
    assert dec.getParameter("widthDst") == 0


@pytest.mark.parametrize("nthread", [1, 2, 0])
def test_thread_count_does_not_change_the_frames(clip, nthread):
    d = mpegcoder.MpegDecoder()
    d.setParameter(nthread=nthread)
    assert d.FFmpegSetup(str(clip.path)), str(d)
    assert d.getParameter("nthread") == nthread
    assert np.array_equal(d.ExtractFrame(20, 10), clip.frames[20:30])


# --------------------------------------------------------------------------------------------
# Parameters


def test_get_parameter_describes_the_clip(clip, dec):
    p = dec.getParameter()
    assert type(p) is dict
    assert p["videoPath"] == str(clip.path)
    assert (p["width"], p["height"]) == (320, 240)
    assert (p["widthSrc"], p["heightSrc"]) == (320, 240)
    assert (p["widthDst"], p["heightDst"]) == (0, 0)
    assert p["frameCount"] == 0
    assert p["coderName"] == "h264"
    assert p["pixelFormat"] == "yuv420p"
    assert isinstance(p["nthread"], int)
    assert isinstance(p["duration"], float) and abs(p["duration"] - clip.duration) < 0.05
    assert isinstance(p["estFrameNum"], int) and p["estFrameNum"] == clip.count
    assert isinstance(p["avgFrameRate"], float) and abs(p["avgFrameRate"] - 25.0) < 1e-6
    assert p["frameRate"] == (25, 1)
    assert isinstance(p["frameRate"], tuple)
    # The clip's bit rate in kb/s (ffprobe gives bit/s).
    r = subprocess.run(
        ["ffprobe", "-v", "error", "-select_streams", "v:0", "-show_entries",
         "stream=bit_rate", "-of", "csv=p=0", str(clip.path)],
        capture_output=True, text=True, check=True,
    )
    assert isinstance(p["bitRate"], float)
    assert abs(p["bitRate"] - int(r.stdout) / 1000.0) < 1.0, (p["bitRate"], r.stdout)
    assert p["GOPSize"] == 25
    assert 1 <= p["maxBframe"] <= 2


def test_get_parameter_single_keys(dec):
    p = dec.getParameter()
    for key, value in p.items():
        assert dec.getParameter(key) == value, key
    assert dec.getParameter("width") == 320
    assert dec.get_parameter("coderName") == "h264"


def test_get_parameter_unknown_key_raises_key_error(dec):
    with pytest.raises(KeyError):
        dec.getParameter("nosuchkey")


def test_get_parameter_is_picklable(dec):
    dec.ExtractFrame(0, 4)
    p = dec.getParameter()
    back = pickle.loads(pickle.dumps(p))
    assert back == p
    assert back["frameCount"] == 4


def test_get_parameter_before_setup(clip):
    d = mpegcoder.MpegDecoder()
    p = d.getParameter()
    assert type(p) is dict
    assert p["frameCount"] == 0
    assert p["width"] == 0 and p["height"] == 0
    assert pickle.loads(pickle.dumps(p)) == p


# --------------------------------------------------------------------------------------------
# clear() and re-opening


def test_clear_closes_and_setup_reopens(clip, dec):
    dec.ExtractFrame(10, 3)
    dec.clear()
    assert "not set up" in str(dec)
    for call in (lambda: dec.ExtractFrame(), lambda: dec.ExtractGOP(),
                 lambda: dec.ExtractFrame_Time(1.0), lambda: dec.ExtractGOP_Time(1.0)):
        with pytest.raises(mpegcoder.MpegError, match="not set up"):
            call()
    assert dec.FFmpegSetup() is True, str(dec)
    assert np.array_equal(np.concatenate(_gops(dec)), clip.frames)


def test_clear_twice_and_before_setup():
    d = mpegcoder.MpegDecoder()
    d.clear()
    d.clear()
    with pytest.raises(mpegcoder.MpegError):
        d.ExtractFrame()


def test_setup_with_another_file_replaces_the_video(clip, tmp_path):
    from conftest import make_clip

    other = make_clip(tmp_path / "small.mp4", width=160, height=96, frames=12, gop=6)
    d = mpegcoder.MpegDecoder(str(clip.path))
    assert d.FFmpegSetup(str(other)) is True, str(d)
    assert d.getParameter("videoPath") == str(other)
    assert d.getParameter("estFrameNum") == 12
    gops = _gops(d)
    assert [g.shape for g in gops] == [(6, 96, 160, 3), (6, 96, 160, 3)]
    # A failed setup leaves no video open.
    assert d.FFmpegSetup(str(tmp_path / "missing.mp4")) is False
    with pytest.raises(mpegcoder.MpegError):
        d.ExtractFrame()


# --------------------------------------------------------------------------------------------
# snake_case aliases


def test_snake_case_aliases(clip):
    d = mpegcoder.MpegDecoder()
    d.set_parameter(widthDst=0, nthread=1)
    assert d.ffmpeg_setup(str(clip.path)) is True
    assert d.get_parameter() == d.getParameter()
    assert np.array_equal(d.extract_frame(5, 2), clip.frames[5:7])
    assert np.array_equal(d.extract_frame_time(0.5, 1), clip.frames[12:13])
    assert np.array_equal(d.extract_gop(30), clip.frames[25:50])
    assert np.array_equal(d.extract_gop_time(0.1), clip.frames[0:25])
    d.reset_gop_position(framePos=51)
    assert np.array_equal(d.extract_gop(), clip.frames[50:60])
    d.set_gop_position(1.2)
    assert np.array_equal(d.extract_gop(), clip.frames[25:50])
    d.clear()
    with pytest.raises(mpegcoder.MpegError):
        d.extract_frame()


def test_aliases_are_the_same_methods():
    D = mpegcoder.MpegDecoder
    pairs = {
        "ffmpeg_setup": "FFmpegSetup",
        "set_parameter": "setParameter",
        "get_parameter": "getParameter",
        "extract_frame": "ExtractFrame",
        "extract_frame_time": "ExtractFrame_Time",
        "extract_gop": "ExtractGOP",
        "extract_gop_time": "ExtractGOP_Time",
        "reset_gop_position": "ResetGOPPosition",
        "set_gop_position": "setGOPPosition",
    }
    for alias, name in pairs.items():
        assert getattr(D, alias) == getattr(D, name), alias
    assert callable(D.ExtractFrameByTime) and callable(D.ExtractGOPByTime)


def test_version():
    assert isinstance(mpegcoder.__version__, str) and mpegcoder.__version__
    assert mpegcoder.version() == mpegcoder.__version__
