"""MpegServer: parameters, failures, pacing, and real pushes to GStreamer's RTSP server.

A push re-encoded by libx264 is checked frame by frame against the source (conftest's
check_reencoded: every frame once, in order, close to its source frame); a push with
codecName='copy' must decode to exactly the source's frames.
"""

import pickle
import time
from fractions import Fraction

import numpy as np
import pytest

import mpegcoder
from conftest import check_reencoded, closed_tcp_port, decode_all


@pytest.fixture
def decoder(clip):
    d = mpegcoder.MpegDecoder()
    assert d.FFmpegSetup(str(clip.path)), str(d)
    yield d
    d.clear()


def _server_for(url, **params):
    e = mpegcoder.MpegServer()
    e.setParameter(width=320, height=240, frameRate=(25, 1), videoAddress=url, **params)
    return e


# --------------------------------------------------------------------------------------------
# Parameters


def test_defaults():
    e = mpegcoder.MpegServer()
    p = e.getParameter()
    assert type(p) is dict
    assert p["codecName"] == "libx264"
    assert p["videoAddress"] == ""
    assert p["frameCount"] == 0
    assert p["waitRef"] == 0.0
    for key in ("formatName", "nthread", "bitRate", "width", "height", "widthSrc", "heightSrc",
                "GOPSize", "maxBframe", "frameRate", "frameAhead"):
        assert key in p, key
    assert pickle.loads(pickle.dumps(p)) == p
    assert "not set up" in str(e)


def test_inherits_from_config_dict(clip, decoder):
    config = decoder.getParameter()
    e = mpegcoder.MpegServer()
    e.setParameter(configDict=config, videoAddress="rtsp://127.0.0.1:8554/video")
    p = e.getParameter()
    assert (p["width"], p["height"]) == (320, 240)
    assert (p["widthSrc"], p["heightSrc"]) == (320, 240)
    assert p["frameRate"] == (25, 1)
    assert p["GOPSize"] == config["GOPSize"] == 25
    assert p["maxBframe"] == config["maxBframe"]
    assert p["bitRate"] == pytest.approx(config["bitRate"])
    assert p["videoAddress"] == "rtsp://127.0.0.1:8554/video"
    assert p["formatName"] == "rtsp"
    assert p["codecName"] == "libx264"
    assert p["videoPath"] == str(clip.path)


def test_inherits_from_a_picklable_copy_of_the_config(decoder):
    # The dual-process example sends the dict through a queue: a pickled copy works the same.
    config = pickle.loads(pickle.dumps(decoder.getParameter()))
    a, b = mpegcoder.MpegServer(), mpegcoder.MpegServer()
    a.setParameter(configDict=config)
    b.setParameter(configDict=decoder.getParameter())
    assert a.getParameter() == b.getParameter()


def test_decoder_keyword_equals_config_dict(decoder):
    a, b = mpegcoder.MpegServer(), mpegcoder.MpegServer()
    a.setParameter(decoder=decoder, videoAddress="rtmp://127.0.0.1:1935/live/a")
    b.setParameter(configDict=decoder.getParameter(), videoAddress="rtmp://127.0.0.1:1935/live/a")
    pa, pb = a.getParameter(), b.getParameter()
    assert pa == pb
    assert pa["formatName"] == "flv"
    assert (pa["width"], pa["height"], pa["frameRate"]) == (320, 240, (25, 1))


def test_inherits_a_scaling_decoders_frame_size(clip):
    d = mpegcoder.MpegDecoder()
    d.setParameter(widthDst=160, heightDst=120)
    assert d.FFmpegSetup(str(clip.path)), str(d)
    e = mpegcoder.MpegServer()
    e.setParameter(decoder=d)
    p = e.getParameter()
    # The frames the decoder hands out are what will be served.
    assert (p["widthSrc"], p["heightSrc"]) == (160, 120)
    assert (p["width"], p["height"]) == (160, 120)


def test_bit_rate_is_in_kilobits(decoder):
    e = mpegcoder.MpegServer()
    e.setParameter(bitRate=1500)
    assert e.getParameter("bitRate") == pytest.approx(1500.0)
    e.setParameter(bitRate=256.5)
    assert e.getParameter("bitRate") == pytest.approx(256.5)
    # The decoder's bitRate is kb/s too: inherited unchanged.
    e2 = mpegcoder.MpegServer()
    e2.setParameter(configDict=decoder.getParameter())
    assert e2.getParameter("bitRate") == pytest.approx(decoder.getParameter("bitRate"))
    assert 100 < e2.getParameter("bitRate") < 2000  # kb/s, not bit/s


def test_explicit_values_override_the_config(decoder):
    e = mpegcoder.MpegServer()
    e.setParameter(configDict=decoder.getParameter(), width=160, height=120, bitRate=400,
                   GOPSize=12, maxBframe=0, frameRate=(30000, 1001), frameAhead=8, nthread=2)
    p = e.getParameter()
    assert (p["width"], p["height"]) == (160, 120)  # encoded size
    assert (p["widthSrc"], p["heightSrc"]) == (320, 240)  # size of the frames served
    assert p["bitRate"] == pytest.approx(400.0)
    assert p["GOPSize"] == 12
    assert p["maxBframe"] == 0
    assert p["frameRate"] == (30000, 1001)
    assert p["frameAhead"] == 8
    assert p["nthread"] == 2
    # A later configDict does not undo what was set explicitly.
    e.setParameter(configDict=decoder.getParameter())
    assert e.getParameter("GOPSize") == 12
    assert e.getParameter("width") == 160


def test_only_the_keywords_given_change():
    e = mpegcoder.MpegServer()
    e.setParameter(videoAddress="rtsp://127.0.0.1:8554/a", GOPSize=10)
    e.setParameter(bitRate=300)
    p = e.getParameter()
    assert p["videoAddress"] == "rtsp://127.0.0.1:8554/a"
    assert p["GOPSize"] == 10


def test_source_size_separate_from_encoded_size():
    e = mpegcoder.MpegServer()
    e.setParameter(widthSrc=640, heightSrc=480, width=320, height=240, frameRate=25.0)
    p = e.getParameter()
    assert (p["widthSrc"], p["heightSrc"], p["width"], p["height"]) == (640, 480, 320, 240)


@pytest.mark.parametrize("rate,value", [(25.0, 25), (30, 30), ((30000, 1001), Fraction(30000, 1001)),
                                        (12.5, Fraction(25, 2)), ((50, 2), 25)])
def test_frame_rate_forms(rate, value):
    e = mpegcoder.MpegServer()
    e.setParameter(frameRate=rate)
    num, den = e.getParameter("frameRate")
    assert Fraction(num, den) == value


def test_extras_are_accepted(tmp_path):
    e = mpegcoder.MpegServer()
    e.setParameter(transport="tcp", extraAddresses=["rtsp://127.0.0.1:1/b"], reconnect=3,
                   insecure=False, audio="none", preset="ultrafast", tune="zerolatency",
                   profile="high", pace=True, rate=1.0, videoPath=str(tmp_path / "v.mp4"))
    e.setParameter(transport="udp", reconnect=True, audio=False)
    e.setParameter(transport="auto", reconnect=False, audio="auto")
    assert e.getParameter("videoPath") == str(tmp_path / "v.mp4")


def test_get_parameter_single_keys_and_unknown_key():
    e = _server_for("rtsp://127.0.0.1:8554/x", bitRate=500)
    p = e.getParameter()
    for key, value in p.items():
        assert e.getParameter(key) == value, key
    with pytest.raises(KeyError):
        e.getParameter("nosuchkey")


@pytest.mark.parametrize(
    "kw",
    [dict(bitRate="fast"), dict(configDict=5), dict(configDict=[("width", 3)]),
     dict(frameRate="25"), dict(videoAddress=5), dict(width="320"), dict(decoder=5),
     dict(reconnect="often"), dict(extraAddresses=5)],
    ids=lambda kw: next(iter(kw)),
)
def test_wrong_types_raise_type_error(kw):
    with pytest.raises(TypeError):
        mpegcoder.MpegServer().setParameter(**kw)


@pytest.mark.parametrize(
    "kw",
    [dict(width=-1), dict(height=-240), dict(widthSrc=-2), dict(bitRate=-5),
     dict(GOPSize=-1), dict(maxBframe=-1), dict(frameRate=(0, 1)), dict(frameRate=-25.0),
     dict(frameAhead=-3), dict(nthread=-1), dict(transport="carrier-pigeon"),
     dict(preset="warp-speed"), dict(rate=0.0)],
    ids=lambda kw: f"{next(iter(kw))}={next(iter(kw.values()))}",
)
def test_bad_values_raise_value_error(kw):
    with pytest.raises(ValueError):
        mpegcoder.MpegServer().setParameter(**kw)


def test_a_refused_set_parameter_changes_nothing():
    e = mpegcoder.MpegServer()
    e.setParameter(width=320, GOPSize=10)
    with pytest.raises(ValueError):
        e.setParameter(width=640, GOPSize=-1)
    assert e.getParameter("width") == 320
    assert e.getParameter("GOPSize") == 10


def test_positional_parameters_are_refused():
    with pytest.raises(TypeError):
        mpegcoder.MpegServer().setParameter({"width": 320})


# --------------------------------------------------------------------------------------------
# Failures


def test_setup_without_address_fails_with_the_reason(decoder):
    e = mpegcoder.MpegServer()
    e.setParameter(configDict=decoder.getParameter())
    assert e.FFmpegSetup() is False
    assert "address" in str(e).lower(), str(e)
    with pytest.raises(mpegcoder.MpegError):
        e.ServeFrame(np.zeros((240, 320, 3), np.uint8))


def test_setup_without_frame_size_fails():
    e = mpegcoder.MpegServer()
    e.setParameter(videoAddress=f"rtsp://127.0.0.1:{closed_tcp_port()}/x", frameRate=25)
    assert e.FFmpegSetup() is False
    assert "size" in str(e).lower() or "width" in str(e).lower(), str(e)


@pytest.mark.parametrize("scheme", ["rtsp", "rtmp"])
def test_setup_to_a_closed_port_fails_naming_the_url_without_password(scheme):
    port = closed_tcp_port()
    path = "/live" if scheme == "rtsp" else "/live/key"
    url = f"{scheme}://bob:hunter2@127.0.0.1:{port}{path}"
    e = _server_for(url)
    start = time.monotonic()
    assert e.FFmpegSetup() is False
    assert time.monotonic() - start < 10
    reason = str(e)
    assert f"127.0.0.1:{port}" in reason, reason
    assert f"{scheme}://" in reason and path in reason, reason
    assert "hunter2" not in reason, reason
    assert "hunter2" not in repr(e)
    assert "refused" in reason.lower(), reason
    with pytest.raises(mpegcoder.MpegError) as info:
        e.ServeFrame(np.zeros((240, 320, 3), np.uint8))
    assert "hunter2" not in str(info.value)


def test_serve_before_setup_raises():
    e = _server_for("rtsp://127.0.0.1:8554/x")
    frame = np.zeros((240, 320, 3), np.uint8)
    with pytest.raises(mpegcoder.MpegError):
        e.ServeFrame(frame)
    with pytest.raises(mpegcoder.MpegError):
        e.ServeFrameBlock(frame)
    with pytest.raises(mpegcoder.MpegError):
        e.serve_frame(frame)
    # Closing what was never opened is harmless.
    e.FFmpegClose()


def test_bad_codec_name_is_an_error():
    e = _server_for(f"rtsp://127.0.0.1:{closed_tcp_port()}/x")
    try:
        e.setParameter(codecName="no-such-codec")
    except ValueError as err:
        assert "no-such-codec" in str(err)
    else:
        assert e.FFmpegSetup() is False
        assert "no-such-codec" in str(e)


def test_serve_video_without_a_file_raises():
    e = _server_for(f"rtsp://127.0.0.1:{closed_tcp_port()}/x")
    with pytest.raises(mpegcoder.MpegError):
        e.ServeVideo()


def test_serve_video_to_a_closed_port_raises(clip):
    port = closed_tcp_port()
    e = mpegcoder.MpegServer()
    e.setParameter(videoAddress=f"rtsp://bob:hunter2@127.0.0.1:{port}/x", codecName="copy")
    with pytest.raises(mpegcoder.MpegError) as info:
        e.ServeVideo(str(clip.path))
    assert f"127.0.0.1:{port}" in str(info.value)
    assert "hunter2" not in str(info.value)


# --------------------------------------------------------------------------------------------
# Against GStreamer's RTSP server


def test_wrong_frames_raise_value_error(gst_server):
    e = _server_for(gst_server.url())
    assert e.FFmpegSetup() is True, str(e)
    try:
        for bad in [
            np.zeros((240, 320), np.uint8),
            np.zeros((120, 160, 3), np.uint8),
            np.zeros((240, 320, 4), np.uint8),
            np.zeros((1, 240, 320, 3), np.uint8),
            np.zeros((320, 240, 3), np.uint8),
            np.zeros((240, 320, 3), np.float32),
            np.zeros((240, 320, 3), np.uint16),
        ]:
            with pytest.raises(ValueError):
                e.ServeFrame(bad)
            with pytest.raises(ValueError):
                e.ServeFrameBlock(bad)
        assert e.getParameter("frameCount") == 0
        # A view that is not contiguous is a valid frame.
        big = np.zeros((240, 640, 3), np.uint8)
        assert e.ServeFrame(big[:, ::2]) is True
        assert e.getParameter("frameCount") == 1
    finally:
        e.FFmpegClose()


def test_wait_ref_grows_when_frames_are_served_ahead(clip, gst_server):
    e = mpegcoder.MpegServer()
    e.setParameter(configDict=clip_config(clip), videoAddress=gst_server.url())
    assert e.getParameter("waitRef") == 0.0
    assert e.FFmpegSetup() is True, str(e)
    start = time.monotonic()
    waits = []
    for i in range(50):
        assert e.ServeFrame(clip.frames[i]) is True
        waits.append(e.getParameter("waitRef"))
    elapsed = time.monotonic() - start
    assert all(isinstance(w, float) and w >= 0.0 for w in waits), waits
    # 50 frames are 2 s of video; served in a fraction of that, the stream leads the clock by
    # well over a second (the encoder still holds some frames), and waitRef is half the lead.
    assert elapsed < 1.0, f"ServeFrame took {elapsed:.2f} s for 50 frames: it should not wait"
    assert waits[-1] > 0.3, waits
    assert waits[-1] <= (50 / 25 - elapsed) / 2 + 0.05, waits
    assert waits[-1] > waits[len(waits) // 2] > 0.0, waits
    # The lead shrinks as the clock catches up.
    time.sleep(0.3)
    later = e.getParameter("waitRef")
    assert waits[-1] - 0.2 < later < waits[-1], (waits[-1], later)
    assert e.getParameter("frameCount") == 50
    e.FFmpegClose()
    assert e.getParameter("frameCount") == 50
    recorded = decode_all(gst_server.wait_recording())
    check_reencoded(clip.frames[:50], recorded, "ServeFrame recording")


def clip_config(clip):
    d = mpegcoder.MpegDecoder()
    assert d.FFmpegSetup(str(clip.path)), str(d)
    config = d.getParameter()
    d.clear()
    return config


def test_serve_frame_block_push_records_every_frame(clip, gst_server, decoder):
    e = mpegcoder.MpegServer()
    e.setParameter(decoder=decoder, codecName="libx264", videoAddress=gst_server.url())
    assert e.FFmpegSetup() is True, str(e)
    assert "serving" in str(e) or "not set up" not in str(e)
    start = time.monotonic()
    served = 0
    while True:
        gop = decoder.ExtractGOP()
        if gop is None:
            break
        for frame in gop:
            assert e.ServeFrameBlock(frame) is True
            served += 1
            assert e.getParameter("waitRef") >= 0.0
    assert e.getParameter("frameCount") == served == clip.count
    e.FFmpegClose()
    elapsed = time.monotonic() - start
    # Paced: the 2.4 s clip takes about its duration to serve and flush, not less.
    assert elapsed > clip.duration - 0.5, f"served {clip.duration} s of video in {elapsed:.2f} s"
    assert elapsed < clip.duration + 5.0, elapsed
    assert gst_server.sessions() == 1, gst_server.log()
    recorded = decode_all(gst_server.wait_recording())
    values = check_reencoded(clip.frames, recorded, "ServeFrameBlock recording")
    print(f"ServeFrameBlock: PSNR min {min(values):.1f} dB, mean {np.mean(values):.1f} dB")
    # Closing again is harmless; serving after close is an error.
    e.FFmpegClose()
    with pytest.raises(mpegcoder.MpegError):
        e.ServeFrame(clip.frames[0])


def test_serve_frame_block_with_scaling(clip, gst_server):
    # Frames of the source's size, encoded at half of it.
    e = mpegcoder.MpegServer()
    e.setParameter(configDict=clip_config(clip), width=160, height=120,
                   videoAddress=gst_server.url(), frameRate=(50, 1))
    assert e.FFmpegSetup() is True, str(e)
    for frame in clip.frames[:30]:
        e.ServeFrameBlock(frame)
    e.FFmpegClose()
    recorded = decode_all(gst_server.wait_recording())
    assert recorded.shape == (30, 120, 160, 3)


def test_serve_video_copy_is_bit_exact(clip, gst_server):
    e = mpegcoder.MpegServer()
    e.setParameter(configDict=clip_config(clip), codecName="copy", videoAddress=gst_server.url())
    assert e.getParameter("codecName") == "copy"
    start = time.monotonic()
    stats = e.ServeVideo()
    elapsed = time.monotonic() - start
    assert isinstance(stats, dict)
    assert stats["framesSent"] == clip.count, stats
    assert pickle.loads(pickle.dumps(stats)) == stats
    assert elapsed > clip.duration - 0.5, f"ServeVideo took {elapsed:.2f} s: not paced"
    recorded = decode_all(gst_server.wait_recording())
    assert recorded.shape == clip.frames.shape
    # The same H.264 packets: the same pictures, bit for bit.
    for i in range(clip.count):
        assert np.array_equal(recorded[i], clip.frames[i]), f"frame {i} differs"


def test_serve_video_with_an_explicit_path(clip, gst_server):
    e = mpegcoder.MpegServer()
    e.setParameter(videoAddress=gst_server.url(), codecName="copy", rate=4.0)
    stats = e.serve_video(clip.path)
    assert stats["framesSent"] == clip.count
    recorded = decode_all(gst_server.wait_recording())
    assert np.array_equal(recorded, clip.frames)


def test_clear_forgets_everything(decoder):
    e = mpegcoder.MpegServer()
    e.setParameter(decoder=decoder, videoAddress="rtsp://127.0.0.1:8554/x", bitRate=900)
    e.clear()
    p = e.getParameter()
    assert p["videoAddress"] == "" and p["width"] == 0 and p["bitRate"] == 0
    assert e.FFmpegSetup() is False


def test_snake_case_aliases():
    S = mpegcoder.MpegServer
    pairs = {
        "set_parameter": "setParameter",
        "get_parameter": "getParameter",
        "ffmpeg_setup": "FFmpegSetup",
        "serve_frame": "ServeFrame",
        "serve_frame_block": "ServeFrameBlock",
        "serve_video": "ServeVideo",
        "ffmpeg_close": "FFmpegClose",
    }
    for alias, name in pairs.items():
        assert getattr(S, alias) == getattr(S, name), alias
    e = S()
    e.set_parameter(width=320, height=240, frameRate=25)
    assert e.get_parameter("width") == 320
    assert e.ffmpeg_setup() is False
    e.ffmpeg_close()
