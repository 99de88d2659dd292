"""Shared helpers of the mpegcoder test suite.

- Tools: :func:`require` skips a test when a program it needs is missing, and fails it under
  ``CI=true`` (a real-server test must never silently pass in CI).
- Clips: :func:`make_clip` generates a short H.264 MP4 (ffmpeg's animated ``testsrc2`` through
  libx264, with B-frames and a fixed key frame interval); the session fixture ``clip`` holds
  one with its ffprobe facts (frame count, key frames) and its decoded frames.
- Frames: :func:`decode_all` decodes a file with ``mpegcoder.MpegDecoder`` (ExtractGOP until
  None), :func:`psnr` compares two frames, :func:`check_reencoded` checks that a re-encoded
  recording holds every source frame once and in order.
- Servers on loopback, each on a free port chosen at run time and stopped by its own PID at
  fixture teardown: :class:`GstRtspRecord` (GStreamer's RTSP server in RECORD mode, the script
  of the Rust test harness, run with the system python which has ``gi``) and
  :class:`NginxRtmp` (nginx with libnginx-mod-rtmp, application ``live``).
"""

import dataclasses
import os
import queue
import shutil
import signal
import socket
import subprocess
import threading
import time
from pathlib import Path
from typing import List, Optional

import numpy as np
import pytest

import mpegcoder

REPO = Path(__file__).resolve().parents[2]
GST_SCRIPT = REPO / "tests" / "servers" / "gst_rtsp_record.py"
SYSTEM_PYTHON = "/usr/bin/python3"
NGINX_RTMP_MODULE = "/usr/lib/nginx/modules/ngx_rtmp_module.so"

# The test clip: 2.4 s of 320x240 at 25 fps, a key frame every 25 frames (GOPs of 25, 25, 10).
CLIP_WIDTH = 320
CLIP_HEIGHT = 240
CLIP_FPS = 25
CLIP_FRAMES = 60
CLIP_GOP = 25
CLIP_BFRAMES = 2


# --------------------------------------------------------------------------------------------
# Tools


def in_ci() -> bool:
    return os.environ.get("CI", "").lower() in ("true", "1")


def _tool_exists(tool: str) -> bool:
    if os.path.isabs(tool):
        return os.path.exists(tool)
    return shutil.which(tool) is not None


_GI_CHECK = {}


def _gst_python_ok() -> Optional[str]:
    """None when the system python can run the GStreamer RTSP server script, else why not."""
    if "result" not in _GI_CHECK:
        if not os.path.exists(SYSTEM_PYTHON):
            _GI_CHECK["result"] = f"{SYSTEM_PYTHON} is missing"
        elif not GST_SCRIPT.exists():
            _GI_CHECK["result"] = f"{GST_SCRIPT} is missing"
        else:
            probe = (
                "import gi; gi.require_version('Gst', '1.0'); "
                "gi.require_version('GstRtspServer', '1.0'); "
                "from gi.repository import Gst, GstRtspServer"
            )
            r = subprocess.run(
                [SYSTEM_PYTHON, "-c", probe], capture_output=True, text=True, timeout=30
            )
            _GI_CHECK["result"] = (
                None
                if r.returncode == 0
                else "GStreamer's RTSP server for python (gi, GstRtspServer): "
                + (r.stderr.strip().splitlines() or ["import failed"])[-1]
            )
    return _GI_CHECK["result"]


def require(what: str, tools=(), gst=False) -> None:
    """Skips the calling test when a tool is missing (fails it under CI=true)."""
    missing = [t for t in tools if not _tool_exists(t)]
    if gst:
        why = _gst_python_ok()
        if why is not None:
            missing.append(why)
    if not missing:
        return
    msg = f"{what}: missing {', '.join(missing)} (install with `bash .ci/install-deps`)"
    if in_ci():
        pytest.fail(msg + "; real-server tests may not skip under CI=true", pytrace=False)
    pytest.skip(msg)


FFMPEG_TOOLS = ("ffmpeg", "ffprobe")
GST_TOOLS = FFMPEG_TOOLS + (SYSTEM_PYTHON, "gst-launch-1.0")
NGINX_TOOLS = FFMPEG_TOOLS + ("nginx", NGINX_RTMP_MODULE)


def mpegcoder_cli() -> Optional[Path]:
    """The `mpegcoder` command: $MPEGCODER_BIN, else the newest of target/{debug,release}."""
    env = os.environ.get("MPEGCODER_BIN")
    if env:
        return Path(env) if Path(env).is_file() else None
    found = [
        REPO / "target" / profile / "mpegcoder"
        for profile in ("debug", "release")
        if (REPO / "target" / profile / "mpegcoder").is_file()
    ]
    return max(found, key=lambda p: p.stat().st_mtime) if found else None


# --------------------------------------------------------------------------------------------
# Ports


def free_tcp_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def closed_tcp_port() -> int:
    """A loopback port nothing listens on (bound and released: connecting is refused)."""
    return free_tcp_port()


def tcp_listening(port: int) -> bool:
    """True when some socket LISTENs on TCP `port` (read from /proc: no connection made)."""
    needle = f":{port:04X}"
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            with open(table) as f:
                next(f, None)
                for line in f:
                    cols = line.split()
                    if len(cols) > 3 and cols[1].endswith(needle) and cols[3] == "0A":
                        return True
        except OSError:
            continue
    return False


def wait_until(cond, timeout: float, what: str, log=lambda: "") -> None:
    deadline = time.monotonic() + timeout
    while not cond():
        if time.monotonic() > deadline:
            pytest.fail(f"{what} within {timeout} s; log: {log()}", pytrace=False)
        time.sleep(0.02)


# --------------------------------------------------------------------------------------------
# Clips and frames


def run(cmd, **kw) -> subprocess.CompletedProcess:
    r = subprocess.run(
        [str(c) for c in cmd], capture_output=True, text=True, stdin=subprocess.DEVNULL, **kw
    )
    if r.returncode != 0:
        pytest.fail(f"{cmd} failed ({r.returncode}): {r.stderr}", pytrace=False)
    return r


def make_clip(
    path: Path,
    width=CLIP_WIDTH,
    height=CLIP_HEIGHT,
    fps=CLIP_FPS,
    frames=CLIP_FRAMES,
    gop=CLIP_GOP,
    bframes=CLIP_BFRAMES,
) -> Path:
    """An H.264 MP4 of ffmpeg's animated testsrc2 (libx264, veryfast, yuv420p), with a key
    frame every `gop` frames exactly (no scene-cut key frames) and up to `bframes` B-frames."""
    run(
        ["ffmpeg", "-v", "error", "-nostdin", "-y", "-f", "lavfi", "-i",
         f"testsrc2=size={width}x{height}:rate={fps}", "-frames:v", str(frames),
         "-c:v", "libx264", "-preset", "veryfast", "-pix_fmt", "yuv420p",
         "-bf", str(bframes), "-g", str(gop), "-keyint_min", str(gop), "-sc_threshold", "0",
         path]
    )
    return path


def probe_frames(path: Path):
    """ffprobe's decode of the first video stream: (frame count, key frame positions, picture
    types), in presentation order."""
    r = run(
        ["ffprobe", "-v", "error", "-select_streams", "v:0", "-show_entries",
         "frame=key_frame,pict_type", "-of", "csv=p=0", path]
    )
    rows = [line.split(",") for line in r.stdout.split() if line.strip()]
    keys = [i for i, row in enumerate(rows) if row[0] == "1"]
    return len(rows), keys, [row[1] if len(row) > 1 else "?" for row in rows]


def ffmpeg_rgb_frames(path: Path, width: int, height: int) -> np.ndarray:
    """Every frame of `path` decoded by the ffmpeg CLI to packed RGB (an independent decoder
    and colour conversion: close to mpegcoder's, not necessarily bit-exact)."""
    r = subprocess.run(
        ["ffmpeg", "-v", "error", "-nostdin", "-i", str(path), "-map", "0:v:0",
         "-fps_mode", "passthrough", "-f", "rawvideo", "-pix_fmt", "rgb24", "-"],
        capture_output=True, stdin=subprocess.DEVNULL,
    )
    assert r.returncode == 0, r.stderr.decode(errors="replace")
    frame = width * height * 3
    assert len(r.stdout) % frame == 0
    return np.frombuffer(r.stdout, np.uint8).reshape(-1, height, width, 3)


def decode_all(path, **params) -> np.ndarray:
    """Every frame of `path` decoded with mpegcoder.MpegDecoder (ExtractGOP until None), as one
    (N, H, W, 3) array; `params` go to setParameter first."""
    d = mpegcoder.MpegDecoder()
    if params:
        d.setParameter(**params)
    assert d.FFmpegSetup(str(path)), f"cannot open {path}: {d}"
    gops = []
    while True:
        gop = d.ExtractGOP()
        if gop is None:
            break
        gops.append(gop)
    d.clear()
    assert gops, f"{path}: no frames decoded"
    return np.concatenate(gops)


def psnr(a: np.ndarray, b: np.ndarray) -> float:
    """PSNR (dB) of two uint8 frames of one shape over all pixels and channels."""
    assert a.shape == b.shape, (a.shape, b.shape)
    mse = np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2)
    return float("inf") if mse == 0 else float(10.0 * np.log10(255.0**2 / mse))


# The lowest PSNR accepted between a frame re-encoded by libx264 (through a server) and its
# source frame. Measured with the test clip re-encoded at its own bit rate (289 kb/s): 30.4 to
# 37 dB per frame, 33.7-34.1 dB on average; neighbouring source frames are at most 20.2 dB
# alike (testsrc2 animates), so a dropped, repeated or swapped frame falls far below.
REENCODED_MIN_PSNR = 28.0


def check_reencoded(source: np.ndarray, recorded: np.ndarray, what: str,
                    min_psnr: float = REENCODED_MIN_PSNR) -> List[float]:
    """Checks that `recorded` (decoded from a recording of a re-encode) holds every frame of
    `source` exactly once, in order: as many frames, frame i close to source frame i (PSNR
    above `min_psnr`) and closer to it than to source frames i-1 and i+1. Returns the PSNRs."""
    assert recorded.shape[1:] == source.shape[1:], f"{what}: frame size {recorded.shape[1:]}"
    assert len(recorded) == len(source), (
        f"{what}: {len(recorded)} frames recorded, the source has {len(source)}"
    )
    values = []
    for i, frame in enumerate(recorded):
        same = psnr(frame, source[i])
        assert same >= min_psnr, f"{what}: frame {i} PSNR {same:.1f} dB < {min_psnr} dB"
        for j in (i - 1, i + 1):
            if 0 <= j < len(source):
                other = psnr(frame, source[j])
                assert same > other, (
                    f"{what}: recorded frame {i} is closer to source frame {j} "
                    f"({other:.1f} dB) than to source frame {i} ({same:.1f} dB)"
                )
        values.append(same)
    return values


def find_run(source: np.ndarray, frames: np.ndarray, what: str, min_len: int) -> int:
    """Checks that `frames` are a contiguous run of `source` (exactly equal, in order) of at
    least `min_len` frames; returns the source index where the run starts."""
    assert frames is not None and len(frames) >= min_len, (
        f"{what}: {0 if frames is None else len(frames)} frames, expected at least {min_len}"
    )
    starts = [i for i in range(len(source)) if np.array_equal(source[i], frames[0])]
    assert starts, f"{what}: the first frame equals no source frame"
    start = starts[0]
    assert start + len(frames) <= len(source), (
        f"{what}: {len(frames)} frames from source frame {start}, the source has only "
        f"{len(source) - start} from there"
    )
    for k, frame in enumerate(frames):
        assert np.array_equal(frame, source[start + k]), (
            f"{what}: frame {k} is not source frame {start + k} (run from source frame {start})"
        )
    return start


def source_index(source: np.ndarray, frame: np.ndarray) -> Optional[int]:
    for i, s in enumerate(source):
        if np.array_equal(s, frame):
            return i
    return None


@dataclasses.dataclass
class Clip:
    path: Path
    width: int
    height: int
    fps: int
    count: int  # frames ffprobe decodes
    key_frames: List[int]  # positions of the key frames, presentation order
    pict_types: List[str] = dataclasses.field(repr=False)
    # mpegcoder's sequential decode (ExtractGOP until None)
    frames: np.ndarray = dataclasses.field(repr=False)

    @property
    def duration(self) -> float:
        return self.count / self.fps

    def gops(self):
        """(start, end) of every GOP, in frames."""
        bounds = self.key_frames + [self.count]
        return list(zip(bounds[:-1], bounds[1:]))


@pytest.fixture(scope="session")
def clip(tmp_path_factory) -> Clip:
    require("test clip", FFMPEG_TOOLS)
    path = make_clip(tmp_path_factory.mktemp("clip") / "clip.mp4")
    count, keys, types = probe_frames(path)
    assert count == CLIP_FRAMES, f"ffprobe decodes {count} frames of {path}"
    assert keys == list(range(0, CLIP_FRAMES, CLIP_GOP)), f"key frames at {keys}"
    assert "B" in types, "the clip has no B-frames"
    frames = decode_all(path)
    # Every frame differs clearly from its neighbours (testsrc2 animates): a frame that
    # arrives twice or not at all shows in the frame-by-frame comparisons.
    for i in range(len(frames) - 1):
        assert psnr(frames[i], frames[i + 1]) < 24.0, f"frames {i} and {i + 1} are too alike"
    return Clip(path, CLIP_WIDTH, CLIP_HEIGHT, CLIP_FPS, count, keys, types, frames)


# --------------------------------------------------------------------------------------------
# Servers


class ServerProcess:
    """A child process with stdin closed and stderr in a log file, stopped by its own PID."""

    def __init__(self, name: str, cmd, log: Path, stdout=subprocess.DEVNULL):
        self.name = name
        self.log_path = log
        self._log = open(log, "wb")
        self.proc = subprocess.Popen(
            [str(c) for c in cmd], stdin=subprocess.DEVNULL, stdout=stdout, stderr=self._log
        )

    @property
    def pid(self) -> int:
        return self.proc.pid

    def running(self) -> bool:
        return self.proc.poll() is None

    def log(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")
        except OSError:
            return ""

    def wait_stdout_line(self, prefix: str, timeout: float) -> str:
        lines: "queue.Queue[str]" = queue.Queue()

        def reader():
            for raw in self.proc.stdout:
                line = raw.decode(errors="replace").strip()
                if line.startswith(prefix) or line.startswith("ERROR"):
                    lines.put(line)
                    return
            lines.put("")

        threading.Thread(target=reader, daemon=True).start()
        try:
            line = lines.get(timeout=timeout)
        except queue.Empty:
            pytest.fail(f"{self.name} did not print {prefix!r} within {timeout} s; "
                        f"log: {self.log()}", pytrace=False)
        if not line.startswith(prefix):
            pytest.fail(f"{self.name} failed to start: {line!r}; log: {self.log()}",
                        pytrace=False)
        return line

    def stop(self, grace: float = 2.0) -> None:
        if self.proc.poll() is None:
            os.kill(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(grace)
            except subprocess.TimeoutExpired:
                os.kill(self.proc.pid, signal.SIGKILL)
                self.proc.wait()
        if self.proc.stdout is not None:
            self.proc.stdout.close()
        self._log.close()


class GstRtspRecord:
    """GStreamer's RTSP server in RECORD mode at rtsp://127.0.0.1:PORT/MOUNT; what a publisher
    sends is written as Annex B H.264 to `out`, complete once the publisher tore down."""

    def __init__(self, workdir: Path, mount: str = "/record"):
        self.port = free_tcp_port()
        self.mount = mount
        self.out = workdir / f"gst-record-{self.port}.h264"
        self.server = ServerProcess(
            "GStreamer RTSP server",
            [SYSTEM_PYTHON, GST_SCRIPT, "--port", self.port, "--mount", mount, "--out", self.out],
            workdir / f"gst-{self.port}.log",
            stdout=subprocess.PIPE,
        )
        try:
            self.server.wait_stdout_line("READY", 15)
            wait_until(lambda: tcp_listening(self.port), 5,
                       f"GStreamer did not listen on port {self.port}", self.log)
        except BaseException:
            self.stop()
            raise

    def url(self, creds=None) -> str:
        auth = f"{creds[0]}:{creds[1]}@" if creds else ""
        return f"rtsp://{auth}127.0.0.1:{self.port}{self.mount}"

    def log(self) -> str:
        return self.server.log()

    def sessions(self) -> int:
        return self.log().count("record session: ")

    def wait_recording(self, quiet: float = 0.5, timeout: float = 15.0) -> Path:
        """Waits until the recording exists and has not grown for `quiet` seconds (the EOS of
        the publisher's TEARDOWN ends the file); returns its path."""
        deadline = time.monotonic() + timeout
        last, since = -1, time.monotonic()
        while True:
            size = self.out.stat().st_size if self.out.exists() else 0
            now = time.monotonic()
            if size != last:
                last, since = size, now
            elif size > 0 and now - since >= quiet:
                return self.out
            if now > deadline:
                pytest.fail(f"recording {self.out} not complete within {timeout} s (size "
                            f"{size}); server log: {self.log()}", pytrace=False)
            time.sleep(0.05)

    def stop(self) -> None:
        self.server.stop()


class NginxRtmp:
    """nginx with the RTMP module on 127.0.0.1:PORT, application `live` (live on): a publisher
    at rtmp://127.0.0.1:PORT/live/KEY is relayed to the players of the same URL."""

    def __init__(self, workdir: Path):
        self.port = free_tcp_port()
        self.dir = workdir / f"nginx-{self.port}"
        self.dir.mkdir(parents=True)
        # The worker runs as `nobody` when nginx starts as root.
        os.chmod(self.dir, 0o777)
        conf = f"""load_module {NGINX_RTMP_MODULE};
daemon off;
master_process on;
worker_processes 1;
pid {self.dir}/nginx.pid;
error_log {self.dir}/error.log info;
events {{ worker_connections 256; }}
rtmp {{
  server {{
    listen 127.0.0.1:{self.port};
    chunk_size 4096;
    application live {{
      live on;
    }}
  }}
}}
"""
        conf_path = self.dir / "nginx.conf"
        conf_path.write_text(conf)
        self.server = ServerProcess(
            "nginx-rtmp",
            ["nginx", "-p", self.dir, "-e", self.dir / "error.log", "-c", conf_path],
            self.dir / "stderr.log",
        )
        try:
            wait_until(lambda: tcp_listening(self.port) or not self.server.running(), 10,
                       f"nginx did not listen on port {self.port}", self.log)
            if not self.server.running():
                pytest.fail(f"nginx exited: {self.log()}", pytrace=False)
        except BaseException:
            self.stop()
            raise

    def url(self, key: str) -> str:
        return f"rtmp://127.0.0.1:{self.port}/live/{key}"

    def log(self) -> str:
        try:
            text = (self.dir / "error.log").read_text(errors="replace")
        except OSError:
            text = ""
        return text + self.server.log()

    def players(self, key: str) -> int:
        return self.log().count(f"play: name='{key}'")

    def stop(self) -> None:
        self.server.stop()


@pytest.fixture
def gst_server(tmp_path):
    """A GStreamer RTSP RECORD server at rtsp://127.0.0.1:PORT/record for this test."""
    require("GStreamer RTSP server", GST_TOOLS, gst=True)
    server = GstRtspRecord(tmp_path)
    yield server
    server.stop()


@pytest.fixture(scope="module")
def nginx_server(tmp_path_factory):
    """nginx-rtmp for the tests of a module (each uses its own stream key)."""
    require("nginx-rtmp", NGINX_TOOLS)
    server = NginxRtmp(tmp_path_factory.mktemp("nginx"))
    yield server
    server.stop()
