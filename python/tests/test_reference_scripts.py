"""mpegCoder's two publishing examples, run unchanged (but for the import line) as programs.

``server_non_blocking.py`` serves every frame with ServeFrame and sleeps waitRef every ten
frames; ``server_dual_procs.py`` decodes in one process and serves with ServeFrameBlock in
another, the frames crossing a multiprocessing queue. Each runs with this venv's python in a
directory holding the clip as ``test-video.mp4``, its address ``rtsp://localhost:8554/video``
pointed at a GStreamer RTSP RECORD server of the test. Both must exit 0, and the recording
must hold every frame of the source once and in order.
"""

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import GST_TOOLS, GstRtspRecord, check_reencoded, decode_all, require

HERE = Path(__file__).resolve().parent
ADDRESS = "rtsp://localhost:8554/video"


@pytest.fixture
def video_server(tmp_path):
    require("GStreamer RTSP server", GST_TOOLS, gst=True)
    server_dir = tmp_path / "server"
    server_dir.mkdir()
    server = GstRtspRecord(server_dir, mount="/video")
    yield server
    server.stop()


def _run_script(name: str, workdir: Path, clip, server) -> subprocess.CompletedProcess:
    text = (HERE / name).read_text()
    assert "import mpegcoder as mpegCoder" in text
    assert text.count(ADDRESS) >= 1, f"{name} does not use {ADDRESS}"
    script = workdir / name
    script.write_text(text.replace(ADDRESS, server.url()))
    shutil.copyfile(clip.path, workdir / "test-video.mp4")
    try:
        return subprocess.run(
            [sys.executable, str(script)], cwd=workdir, capture_output=True, text=True,
            stdin=subprocess.DEVNULL, timeout=60,
        )
    except subprocess.TimeoutExpired as e:
        pytest.fail(f"{name} did not finish within 60 s; stdout: {e.stdout!r}; stderr: "
                    f"{e.stderr!r}; server log: {server.log()}", pytrace=False)


@pytest.mark.parametrize("name", ["server_non_blocking.py", "server_dual_procs.py"])
def test_reference_script_publishes_every_frame(name, tmp_path, clip, video_server):
    work = tmp_path / "run"
    work.mkdir()
    result = _run_script(name, work, clip, video_server)
    assert result.returncode == 0, (
        f"{name} exited {result.returncode}; stdout: {result.stdout}; stderr: {result.stderr}"
    )
    # The scripts print the server or decoder only when it could not be set up.
    assert "not set up" not in result.stdout, result.stdout
    assert video_server.sessions() == 1, video_server.log()
    recorded = decode_all(video_server.wait_recording())
    values = check_reencoded(clip.frames, recorded, f"{name} recording")
    print(f"{name}: PSNR min {min(values):.1f} dB, mean {sum(values) / len(values):.1f} dB")
