"""The GIL is released while the package waits: another Python thread runs meanwhile."""

import shutil
import socket
import subprocess
import threading
import time

import pytest

import mpegcoder


def _ticker():
    """A thread that records the time of every loop; stop() ends it and returns the times."""
    stamps = []
    done = threading.Event()

    def run():
        while not done.is_set():
            stamps.append(time.monotonic())
            time.sleep(0.001)

    t = threading.Thread(target=run, daemon=True)
    t.start()

    def stop():
        done.set()
        t.join()
        return stamps

    return stop


def _ticks_inside(stamps, start, end, margin=0.02):
    return sum(1 for s in stamps if start + margin < s < end - margin)


@pytest.fixture(scope="module")
def long_clip(tmp_path_factory):
    if shutil.which("ffmpeg") is None:
        pytest.fail("ffmpeg is needed to make the test clip")
    path = tmp_path_factory.mktemp("gil") / "long.mp4"
    subprocess.run(
        ["ffmpeg", "-v", "error", "-y", "-f", "lavfi", "-i", "testsrc2=size=640x480:rate=25",
         "-t", "6", "-c:v", "libx264", "-preset", "ultrafast", "-pix_fmt", "yuv420p", str(path)],
        check=True,
    )
    return path


def test_decoding_releases_the_gil(long_clip):
    d = mpegcoder.MpegDecoder()
    assert d.FFmpegSetup(str(long_clip))
    stop = _ticker()
    time.sleep(0.05)
    start = time.monotonic()
    frames = d.ExtractFrame(0, 150)
    end = time.monotonic()
    stamps = stop()
    assert frames.shape == (150, 480, 640, 3)
    # Decoding and converting 150 VGA frames takes well over 100 ms here; a held GIL would
    # leave the other thread no turn at all inside the call.
    assert end - start > 0.1, f"the call took only {end - start:.3f} s: nothing to measure"
    inside = _ticks_inside(stamps, start, end)
    assert inside >= 10, f"the other thread ran {inside} times in {end - start:.3f} s"


def test_waiting_for_a_silent_server_releases_the_gil_and_times_out():
    # A server that accepts and never answers: FFmpegSetup waits for its reply until the
    # timeout, with the GIL released, then returns False with the reason.
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(4)
    port = listener.getsockname()[1]
    try:
        c = mpegcoder.MpegClient()
        c.setParameter(timeout=1.0)
        stop = _ticker()
        start = time.monotonic()
        ok = c.FFmpegSetup(f"rtmp://user:secret@127.0.0.1:{port}/live/cam")
        end = time.monotonic()
        stamps = stop()
        assert ok is False
        reason = str(c)
        assert "secret" not in reason, reason
        assert f"127.0.0.1:{port}" in reason, reason
        assert 0.8 < end - start < 8.0, f"FFmpegSetup took {end - start:.2f} s with timeout=1"
        assert _ticks_inside(stamps, start, end) >= 50
        with pytest.raises(mpegcoder.MpegError):
            c.ExtractFrame()
    finally:
        listener.close()
