"""MpegClient: parameters, failures, and pulls from nginx-rtmp.

The clip is published with codec copy (the `mpegcoder push` command when it is built, else
MpegServer.ServeVideo on a thread), so what the client decodes must be exactly the frames
MpegDecoder gives of the source: a contiguous run of them, or with dstFrameRate a subset in
increasing order.
"""

import pickle
import subprocess
import threading
import time
from fractions import Fraction

import numpy as np
import pytest

import mpegcoder
from conftest import closed_tcp_port, find_run, mpegcoder_cli, source_index, wait_until


# --------------------------------------------------------------------------------------------
# Parameters and failures


def test_defaults():
    c = mpegcoder.MpegClient()
    p = c.getParameter()
    assert type(p) is dict
    for key in ("videoAddress", "width", "height", "frameCount", "coderName", "srcFrameRate",
                "dstFrameRate", "readSize", "cacheSize"):
        assert key in p, key
    assert p["videoAddress"] == ""
    assert p["frameCount"] == 0
    assert p["readSize"] >= 1 and p["cacheSize"] >= p["readSize"]
    assert pickle.loads(pickle.dumps(p)) == p
    assert "not set up" in str(c)


def test_set_parameter_round_trips():
    c = mpegcoder.MpegClient()
    c.setParameter(dstFrameRate=(10, 1), readSize=5, cacheSize=50, widthDst=160, heightDst=120,
                   nthread=2, transport="tcp", timeout=3.5)
    p = c.getParameter()
    assert p["dstFrameRate"] == (10, 1)
    assert (p["readSize"], p["cacheSize"]) == (5, 50)
    assert (p["widthDst"], p["heightDst"]) == (160, 120)
    assert p["nthread"] == 2
    assert p["timeout"] == pytest.approx(3.5)
    for key, value in p.items():
        assert c.getParameter(key) == value, key
    # Only the keywords given change.
    c.setParameter(readSize=7)
    assert c.getParameter("cacheSize") == 50
    assert c.getParameter("dstFrameRate") == (10, 1)
    c.setParameter(dstFrameRate=12.5)
    num, den = c.getParameter("dstFrameRate")
    assert Fraction(num, den) == Fraction(25, 2)


def test_unknown_key_raises_key_error():
    with pytest.raises(KeyError):
        mpegcoder.MpegClient().getParameter("nosuchkey")


@pytest.mark.parametrize(
    "kw",
    [dict(readSize="a"), dict(cacheSize=2.5), dict(dstFrameRate="fast"), dict(timeout="1"),
     dict(widthDst="160")],
    ids=lambda kw: next(iter(kw)),
)
def test_wrong_types_raise_type_error(kw):
    with pytest.raises(TypeError):
        mpegcoder.MpegClient().setParameter(**kw)


@pytest.mark.parametrize(
    "kw",
    [dict(readSize=0), dict(readSize=-1), dict(cacheSize=-1), dict(readSize=20, cacheSize=10),
     dict(dstFrameRate=(0, 1)), dict(dstFrameRate=-5.0), dict(widthDst=-1), dict(heightDst=-1),
     dict(nthread=-1), dict(timeout=-1.0), dict(timeout=0.0), dict(transport="pigeon")],
    ids=lambda kw: "-".join(f"{k}={v}" for k, v in kw.items()),
)
def test_bad_values_raise_value_error(kw):
    c = mpegcoder.MpegClient()
    before = c.getParameter()
    with pytest.raises(ValueError):
        c.setParameter(**kw)
    assert c.getParameter() == before


def test_extract_before_setup_raises():
    c = mpegcoder.MpegClient()
    with pytest.raises(mpegcoder.MpegError):
        c.ExtractFrame()
    with pytest.raises(mpegcoder.MpegError):
        c.ExtractFrame(5)
    with pytest.raises(mpegcoder.MpegError):
        c.extract_frame()


def test_setup_without_address_fails():
    c = mpegcoder.MpegClient()
    assert c.FFmpegSetup() is False
    assert "address" in str(c).lower(), str(c)


@pytest.mark.parametrize("scheme", ["rtmp", "rtsp"])
def test_setup_to_a_refused_port_fails_naming_the_url_without_password(scheme):
    port = closed_tcp_port()
    path = "/live/cam" if scheme == "rtmp" else "/live"
    c = mpegcoder.MpegClient()
    c.setParameter(timeout=5)
    start = time.monotonic()
    assert c.FFmpegSetup(f"{scheme}://bob:hunter2@127.0.0.1:{port}{path}") is False
    assert time.monotonic() - start < 5
    reason = str(c)
    assert f"127.0.0.1:{port}" in reason and path in reason, reason
    assert "refused" in reason.lower(), reason
    assert "hunter2" not in reason and "hunter2" not in repr(c), reason
    with pytest.raises(mpegcoder.MpegError):
        c.ExtractFrame()


def test_terminate_and_clear_before_setup_are_harmless():
    c = mpegcoder.MpegClient()
    c.terminate()
    c.clear()
    assert c.getParameter("frameCount") == 0


def test_snake_case_aliases():
    C = mpegcoder.MpegClient
    pairs = {
        "set_parameter": "setParameter",
        "get_parameter": "getParameter",
        "ffmpeg_setup": "FFmpegSetup",
        "extract_frame": "ExtractFrame",
    }
    for alias, name in pairs.items():
        assert getattr(C, alias) == getattr(C, name), alias
    c = C()
    c.set_parameter(readSize=3, cacheSize=9)
    assert c.get_parameter("readSize") == 3
    assert c.ffmpeg_setup(f"rtmp://127.0.0.1:{closed_tcp_port()}/live/x") is False


# --------------------------------------------------------------------------------------------
# Pulling from nginx-rtmp


class Publisher:
    """Publishes a file with codec copy at real time: the `mpegcoder push` command when it
    is built, else MpegServer.ServeVideo on a thread."""

    def __init__(self, path, url):
        self.cli = mpegcoder_cli()
        self.error = None
        if self.cli is not None:
            self.proc = subprocess.Popen(
                [str(self.cli), "push", "-q", "--codec", "copy", str(path), url],
                stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
            )
        else:
            self.proc = None
            self.server = mpegcoder.MpegServer()
            self.server.setParameter(videoAddress=url, codecName="copy")

            def run():
                try:
                    self.server.ServeVideo(str(path))
                except Exception as e:  # reported by wait()
                    self.error = e

            self.thread = threading.Thread(target=run, daemon=True)
            self.thread.start()

    def wait(self, timeout=20.0):
        if self.proc is not None:
            try:
                _, err = self.proc.communicate(timeout=timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
                pytest.fail(f"{self.cli} push did not finish within {timeout} s")
            assert self.proc.returncode == 0, f"{self.cli} push failed: {err.decode()}"
        else:
            self.thread.join(timeout)
            assert not self.thread.is_alive(), "ServeVideo did not finish"
            assert self.error is None, f"ServeVideo failed: {self.error}"

    def kill(self):
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()


def _wait_settled(c, timeout=10.0):
    """Waits until the client has decoded all it will (the stream ended, or nothing new for
    1 s)."""
    deadline = time.monotonic() + timeout
    last, since = -1, time.monotonic()
    while time.monotonic() < deadline:
        if c.getParameter("status") in ("ended", "failed"):
            return
        n = c.getParameter("estFrameNum")
        if n != last:
            last, since = n, time.monotonic()
        elif time.monotonic() - since >= 1.0:
            return
        time.sleep(0.05)


def _setup_before_publish(c, nginx, key, clip):
    """FFmpegSetup on a thread (it waits for the stream), then the publisher once nginx has
    the player: the client sees the stream from its first frame."""
    url = nginx.url(key)
    result = {}
    t = threading.Thread(target=lambda: result.update(ok=c.FFmpegSetup(url)), daemon=True)
    t.start()
    wait_until(lambda: nginx.players(key) >= 1 or not t.is_alive(), 10,
               f"the client did not reach nginx as a player of {key}", nginx.log)
    publisher = Publisher(clip.path, url)
    t.join(15)
    assert not t.is_alive(), "FFmpegSetup did not return"
    if not result.get("ok"):
        publisher.kill()
        pytest.fail(f"FFmpegSetup({url}) failed: {c}; nginx log: {nginx.log()}", pytrace=False)
    return publisher


def test_pull_gets_the_source_frames(clip, nginx_server):
    c = mpegcoder.MpegClient()
    cache = clip.count + 40
    c.setParameter(cacheSize=cache, timeout=10)
    publisher = _setup_before_publish(c, nginx_server, "whole", clip)
    try:
        p = c.getParameter()
        assert (p["width"], p["height"]) == (320, 240)
        assert p["coderName"] == "h264"
        assert p["srcFrameRate"] == pytest.approx(25.0, abs=0.01)
        assert p["videoAddress"] == nginx_server.url("whole")
        c.start()  # already running: nothing happens
        publisher.wait()
    finally:
        publisher.kill()
    _wait_settled(c)
    frames = c.ExtractFrame(readSize=cache)
    assert frames is not None, f"no frames pulled: {c}"
    assert frames.dtype == np.uint8 and frames.shape[1:] == (240, 320, 3)
    assert c.getParameter("frameCount") == len(frames)
    start = find_run(clip.frames, frames, "pulled frames", min_len=20)
    # The client was there before the publisher: it has every frame.
    assert start == 0 and len(frames) == clip.count, (start, len(frames))
    # readSize gives the newest frames, oldest first.
    newest = c.ExtractFrame(5)
    assert newest is not None and len(newest) == 5
    assert np.array_equal(newest, clip.frames[-5:])
    c.setParameter(readSize=3)
    assert np.array_equal(c.ExtractFrame(), clip.frames[-3:])
    c.terminate()
    c.clear()


def test_pull_joining_a_live_stream(clip, nginx_server):
    key = "late"
    publisher = Publisher(clip.path, nginx_server.url(key))
    try:
        wait_until(lambda: f"publish: name='{key}'" in nginx_server.log(), 10,
                   "nginx did not take the publisher", nginx_server.log)
        time.sleep(0.2)
        c = mpegcoder.MpegClient()
        c.setParameter(cacheSize=100, readSize=10, timeout=10)
        assert c.FFmpegSetup(nginx_server.url(key)) is True, str(c)
        publisher.wait()
    finally:
        publisher.kill()
    _wait_settled(c)
    frames = c.ExtractFrame(100)
    start = find_run(clip.frames, frames, "frames pulled mid-stream", min_len=20)
    # Decoding starts at a key frame and runs to the end of the stream.
    assert start in clip.key_frames, start
    assert start + len(frames) == clip.count, (start, len(frames))
    assert len(c.ExtractFrame()) == 10  # readSize
    c.terminate()


def test_pull_with_dst_frame_rate_decimates(clip, nginx_server):
    c = mpegcoder.MpegClient()
    c.setParameter(cacheSize=100, dstFrameRate=(10, 1), timeout=10)
    publisher = _setup_before_publish(c, nginx_server, "decimated", clip)
    try:
        publisher.wait()
    finally:
        publisher.kill()
    _wait_settled(c)
    frames = c.ExtractFrame(100)
    assert frames is not None, str(c)
    indices = [source_index(clip.frames, f) for f in frames]
    assert None not in indices, f"pulled frames that are no source frame: {indices}"
    assert all(a < b for a, b in zip(indices, indices[1:])), indices
    # 10 of every 25 frames: about 24 of the 60, evenly spread.
    expected = clip.count * 10 / 25
    assert abs(len(frames) - expected) <= 2, (len(frames), indices)
    gaps = np.diff(indices)
    assert gaps.min() >= 2 and gaps.max() <= 3, indices
    assert c.getParameter("dstFrameRate") == (10, 1)
    c.clear()


def test_pull_with_scaling(clip, nginx_server):
    c = mpegcoder.MpegClient()
    c.setParameter(cacheSize=100, widthDst=160, heightDst=120, timeout=10)
    publisher = _setup_before_publish(c, nginx_server, "scaled", clip)
    try:
        publisher.wait()
    finally:
        publisher.kill()
    _wait_settled(c)
    frames = c.ExtractFrame(100)
    assert frames is not None and frames.shape == (clip.count, 120, 160, 3), (
        None if frames is None else frames.shape
    )
    # The same pictures as the decoder scales them.
    d = mpegcoder.MpegDecoder()
    d.setParameter(widthDst=160, heightDst=120)
    assert d.FFmpegSetup(str(clip.path))
    assert np.array_equal(frames, d.ExtractFrame(0, clip.count))


def test_terminate_then_start_reconnects(clip, nginx_server):
    key = "again"
    c = mpegcoder.MpegClient()
    c.setParameter(cacheSize=100, timeout=10)
    first = _setup_before_publish(c, nginx_server, key, clip)
    try:
        first.wait()
    finally:
        first.kill()
    _wait_settled(c)
    c.terminate()
    players = nginx_server.players(key)
    c.start()
    wait_until(lambda: nginx_server.players(key) > players, 10,
               "start() after terminate() did not connect again", nginx_server.log)
    second = Publisher(clip.path, nginx_server.url(key))
    try:
        second.wait()
    finally:
        second.kill()
    _wait_settled(c)
    frames = c.ExtractFrame(100)
    find_run(clip.frames, frames, "frames after reconnecting", min_len=20)
    c.clear()
