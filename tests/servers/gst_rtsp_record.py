#!/usr/bin/python3
"""An RTSP server in RECORD mode for protocol tests, built on GStreamer's RTSP server library.

A publisher ANNOUNCEs H.264 at rtsp://127.0.0.1:PORT/MOUNT; the server depayloads it and writes
the Annex B elementary stream to --out, finalised when the publisher tears down (EOS). With
--relay-mount, what arrives is also re-served for PLAY at that second mount, so a reader can pull
what was recorded (a RECORD mount itself refuses DESCRIBE).

With --audio the RECORD mount takes H.264 video and AAC audio (RFC 3640, mpeg4-generic) and
writes both into one Matroska file at --out:

    ( rtph264depay name=depay0 ! h264parse ! queue name=q0 ! mux.
      rtpmp4gdepay name=depay1 ! aacparse ! queue name=q1 ! mux.
      matroskamux name=mux ! filesink location=OUT sync=false async=false )

(the queue before the muxer on depay<i>'s branch is named q<i>). With --relay-mount a tee after
each parser also sends the video as H.264 RTP and the audio as mpeg4-generic RTP to two loopback
UDP ports, and the PLAY mount re-serves them as pay0 and pay1:

    ( udpsrc port=V caps="application/x-rtp,media=video,...,encoding-name=H264"
        ! rtpjitterbuffer mode=synced latency=200 ! rtph264depay ! h264parse config-interval=-1
        ! rtph264pay name=pay0 pt=96 config-interval=-1
      udpsrc port=A caps="<the relay payloader's caps>" ! rtpjitterbuffer mode=synced latency=200
        ! rtpmp4gdepay ! aacparse ! rtpmp4gpay name=pay1 pt=97 )

The audio caps carry the AudioSpecificConfig, so the PLAY mount can be DESCRIBEd only once a
publisher sends AAC (up to 5 s of waiting, then 503). The jitterbuffers time the relayed
packets from their RTP timestamps: without them the relayed AAC frames, which the RECORD side
releases a whole RTP packet at a time, reached the reader in bursts of identical timestamps.
"recording finalised: OUT" goes to stderr once the EOS of the teardown went through the muxer.

What GStreamer's RTSP server (1.22) does on its own, and what this script changes with --audio:

- The ANNOUNCE SDP must hold exactly as many media as the factory has depayloaders, matched by
  position (media i feeds depay<i>): rtsp-media's default handle_sdp refuses anything else
  ("Media has more or less streams than SDP") and the client answers 415 Unsupported Media Type
  (ffmpeg publishing video only: "method ANNOUNCE failed: 415 Unsupported Media Type"). An
  audio-first SDP would feed AAC caps to rtph264depay. With --audio, the media's handle_sdp
  matches each SDP media to its depayloader by encoding name (H264 -> depay0, MPEG4-GENERIC ->
  depay1, in any order) and gives a depayloader the SDP does not feed a placeholder media that no
  one can SETUP. Any other encoding is refused (415, the reason in the server log).
- A stream that is ANNOUNCEd but never SETUP has no transport: nothing ever reaches its
  depayloader, not even the EOS at teardown (the pipeline's EOS goes to its sources, and that
  stream has none). matroskamux (GstCollectPads) waits for every sink pad, so it writes nothing
  and the file is never finalised (measured: a 0-byte file). With --audio, at RECORD the branch
  of every stream without a transport is cut from the muxer (its request pad released), so a
  video-only (or audio-only) publisher gets a playable, finalised one-track Matroska file. A
  stream that is SETUP but then never carries a packet still blocks the muxer (no "recording
  finalised" line: the test waiting for it fails with the log).
- rtpmp4gdepay timestamps only the first AU of a multi-AU packet until it has seen two packets
  (it learns the AU duration from their RTP timestamps): the other AUs of the first packet leave
  without a PTS and matroskamux drops them (4 of ffmpeg's first 5 AAC frames were lost). RFC 3640
  lets the SDP say constantDuration; ffmpeg's SDP does not. With --audio the server adds
  constantDuration (1024, or 960 by the AudioSpecificConfig's frameLengthFlag) when it is absent.

Timing (--audio). The recording must keep the sender's A/V offset. rtpbin maps each stream's RTP
timestamps to running time in its jitterbuffer, and aligns the streams of one CNAME with their
sender reports (RFC 3550 6.4.1) by a ts-offset on the jitterbuffers, applied when a buffer leaves
the jitterbuffer. With ffmpeg as the publisher that sync never happened, for two reasons:
- ffmpeg's SRs carry no SDES CNAME (RFC 3550 6.1 requires one in every compound packet; ffmpeg
  5.1's RTSP muxer sent bare SRs), and rtpbin associates streams only by CNAME. One RECORD media
  has one publisher, so the server adds an SDES CNAME, the same for all streams of the media, to
  a compound packet that has none.
- rtpjitterbuffer drops an SR whose RTP timestamp precedes the first RTP packet it received
  ("dropping, older than base time"; still so in GStreamer's main branch). An SR states the RTP
  time of "now", and video with B-frames is sent ahead of its presentation times, so ffmpeg's
  first video SR precedes its first packet, and its next SR comes 5 s later. The server moves
  every SR 500 ms (--sr-shift-ms) later along the sender's own line: NTP + 0.5 s and RTP +
  0.5 s * clock rate is the same mapping, stated at another point (it must stay within rtpbin's
  max-rtcp-rtp-time-diff, 1 s, of the packets received).
With both, rtpbin aligns the streams exactly; the settings that let its ts-offset reach the first
buffers, measured with ffmpeg -re pushing a 2 s clip whose audio starts 21.3 ms before its video
(recorded start offsets, TCP / UDP):
- untouched RTCP: 0 to +1 / +8 to +20 ms over several runs (each stream timed from its own
  first arrival; ffmpeg sends the first audio and video packets together).
- latency: the offsets are known once every stream has delivered an SR and a first packet; a
  jitterbuffer latency longer than the gap between the streams' first packets holds the first
  buffers until then. Latency 0: +1 / +28 ms (the first stream's head left uncorrected). 500 ms
  (--latency) here; the EOS at teardown drains what the jitterbuffers hold.
- buffer-mode: "slave" (the default) re-times packets by arrival and skew estimation: the start
  offset came out right (-21 / -22 ms) but recorded video frame intervals ranged 3-50 ms instead
  of 33. "none" and "synced" (-21 / -21 ms, intervals 33-34 ms) both use the RTP timestamps;
  "synced" (--buffer-mode 4) takes the first packet's arrival as base, so the latency counts from
  the arrival ("none" starts at 0 and counts from the pipeline's start).
- min-ts-offset: offsets below it (default 4 ms) are ignored; 0 here. do-retransmission stays
  off (no retransmission on loopback).

Logs "record session: OUT" to stderr for every publisher session (ANNOUNCE).

Prints "READY <port>" on stdout once it listens. Runs until killed (SIGTERM/SIGINT).
"""
import argparse
import signal
import socket
import sys

import gi

gi.require_version("Gst", "1.0")
gi.require_version("GstRtspServer", "1.0")
gi.require_version("GstRtsp", "1.0")
gi.require_version("GstSdp", "1.0")
from gi.repository import GLib, Gst, GstRtsp, GstRtspServer, GstSdp  # noqa: E402

# Before the media subclass below is registered: its signals take GStreamer types.
Gst.init(None)

# Depayloader index of each RTP encoding the --audio RECORD mount takes.
AV_STREAMS = {"H264": 0, "MPEG4-GENERIC": 1}
# Placeholder SDP media for a depayloader the publisher does not feed (never SETUP).
PLACEHOLDER = {
    0: "m=video 0 RTP/AVP 96\r\na=rtpmap:96 H264/90000\r\na=control:unused-stream-0\r\n",
    1: (
        "m=audio 0 RTP/AVP 97\r\na=rtpmap:97 MPEG4-GENERIC/48000/2\r\n"
        "a=fmtp:97 streamtype=5;profile-level-id=1;mode=AAC-hbr;sizelength=13;indexlength=3;"
        "indexdeltalength=3;config=1190\r\na=control:unused-stream-1\r\n"
    ),
}

OPTIONS = None
# The newest RECORD media of the --audio mount (its pipeline feeds the PLAY relay).
LATEST_RECORD = {"media": None}


def log(msg):
    print("gst_rtsp_record: " + msg, file=sys.stderr, flush=True)


def free_udp_port():
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def split_sdp(text):
    """The session part of an SDP and its media sections (each starting with "m=")."""
    session, medias = [], []
    for line in text.replace("\r\n", "\n").split("\n"):
        if not line:
            continue
        if line.startswith("m="):
            medias.append([line])
        elif medias:
            medias[-1].append(line)
        else:
            session.append(line)
    return session, medias


def encoding_of(media_lines):
    for line in media_lines:
        if line.startswith("a=rtpmap:"):
            parts = line.split(None, 1)
            if len(parts) == 2:
                return parts[1].split("/")[0].upper()
    return None


def aac_frame_length(config_hex):
    """Samples per frame of an AAC AudioSpecificConfig (ISO 14496-3 1.6.2.1), or None."""
    try:
        bits = bin(int(config_hex, 16))[2:].zfill(len(config_hex) * 4)
    except ValueError:
        return None
    pos = 0

    def take(n):
        nonlocal pos
        v = int(bits[pos : pos + n] or "0", 2)
        pos += n
        return v

    aot = take(5)
    if aot == 31:
        aot = 32 + take(6)
    if take(4) == 15:  # samplingFrequencyIndex: explicit frequency follows
        take(24)
    take(4)  # channelConfiguration
    if aot not in (1, 2, 3, 4, 6, 7, 17, 19, 20, 21, 22, 23):
        return None  # not a GASpecificConfig (SBR, PS, ...): leave the SDP alone
    return 960 if take(1) else 1024  # frameLengthFlag


def with_constant_duration(media_lines):
    """Adds constantDuration to an mpeg4-generic fmtp that lacks it (RFC 3640 4.1)."""
    out = []
    for line in media_lines:
        if line.startswith("a=fmtp:") and "constantduration" not in line.lower():
            params = dict(
                p.strip().split("=", 1) for p in line.split(None, 1)[-1].split(";") if "=" in p
            )
            config = {k.lower(): v for k, v in params.items()}.get("config")
            frame = aac_frame_length(config) if config else None
            if frame is not None:
                line = line.rstrip(";") + ";constantDuration={}".format(frame)
                log("mpeg4-generic SDP without constantDuration: assuming {}".format(frame))
        out.append(line)
    return out


def clock_rate_of(media_lines):
    for line in media_lines:
        if line.startswith("a=rtpmap:"):
            parts = line.split(None, 1)
            fields = parts[1].split("/") if len(parts) == 2 else []
            if len(fields) >= 2 and fields[1].isdigit():
                return int(fields[1])
    return None


def fix_sender_reports(data, rate, shift_ms, cname):
    """Rewrites an RTCP compound packet so that rtpbin can use its sender reports.

    Every SR's (NTP, RTP) pair moves `shift_ms` later along the sender's own line (the same
    mapping from RTP time to wall clock, another point on it), and a compound with an SR but no
    SDES gets an SDES CNAME item for the SR's SSRC."""
    out = bytearray()
    ticks = rate * shift_ms // 1000
    frac = (ticks << 32) // rate  # the shift in NTP units (32.32 fixed point)
    sr_ssrc = None
    has_sdes = False
    pos = 0
    while pos + 4 <= len(data):
        if data[pos] >> 6 != 2:
            break
        length = (int.from_bytes(data[pos + 2 : pos + 4], "big") + 1) * 4
        packet = bytearray(data[pos : pos + length])
        if packet[1] == 200 and len(packet) >= 20:
            sr_ssrc = bytes(packet[4:8])
            ntp = int.from_bytes(packet[8:16], "big")
            rtp = int.from_bytes(packet[16:20], "big")
            packet[8:16] = ((ntp + frac) % (1 << 64)).to_bytes(8, "big")
            packet[16:20] = ((rtp + ticks) % (1 << 32)).to_bytes(4, "big")
        elif packet[1] == 202:
            has_sdes = True
        out += packet
        pos += length
    if sr_ssrc is not None and not has_sdes:
        name = cname.encode()[:255]
        chunk = sr_ssrc + bytes([1, len(name)]) + name + b"\x00"
        chunk += b"\x00" * (-len(chunk) % 4)
        out += bytes([0x81, 202]) + (len(chunk) // 4).to_bytes(2, "big") + chunk
    return bytes(out)


class AvRecordMedia(GstRtspServer.RTSPMedia):
    """A RECORD media whose SDP media are matched to depayloaders by codec, not by position."""

    def do_setup_rtpbin(self, rtpbin):
        rtpbin.connect("pad-added", self.on_rtpbin_pad)
        rtpbin.set_property("buffer-mode", OPTIONS.buffer_mode)
        rtpbin.set_property("min-ts-offset", OPTIONS.min_ts_offset_ms * Gst.MSECOND)
        rtpbin.set_property("do-retransmission", False)
        log(
            "rtpbin buffer-mode={} latency={} min-ts-offset={}".format(
                rtpbin.get_property("buffer-mode"),
                rtpbin.get_property("latency"),
                rtpbin.get_property("min-ts-offset"),
            )
        )
        return True

    def on_rtpbin_pad(self, rtpbin, pad):
        name = pad.get_name()
        if name.startswith("recv_rtcp_sink_"):
            idx = int(name.rsplit("_", 1)[1])
            pad.add_probe(Gst.PadProbeType.BUFFER, self.on_rtcp, idx)

    def on_rtcp(self, pad, info, idx):
        # The buffer is not writable here: push a rewritten copy and drop the original.
        if getattr(pad, "rewriting", False):
            return Gst.PadProbeReturn.OK
        rate = getattr(self, "clock_rates", {}).get(idx)
        if not rate or OPTIONS.raw_rtcp:
            return Gst.PadProbeReturn.OK
        buf = info.get_buffer()
        data = buf.extract_dup(0, buf.get_size())
        # One RECORD media has one publisher: its streams share one CNAME.
        cname = "publisher-{:x}".format(id(self))
        moved = fix_sender_reports(data, rate, OPTIONS.sr_shift_ms, cname)
        if moved == data:
            return Gst.PadProbeReturn.OK
        copy = Gst.Buffer.new_wrapped(moved)
        copy.pts, copy.dts = buf.pts, buf.dts
        pad.rewriting = True
        try:
            pad.chain(copy)
        finally:
            pad.rewriting = False
        return Gst.PadProbeReturn.DROP

    def do_handle_sdp(self, sdp):
        session, medias = split_sdp(sdp.as_text())
        ordered = {}
        rates = {}
        for m in medias:
            enc = encoding_of(m)
            idx = AV_STREAMS.get(enc)
            if idx is None:
                log("refusing ANNOUNCE: unsupported encoding {!r} in {!r}".format(enc, m[0]))
                return False
            if idx in ordered:
                log("refusing ANNOUNCE: two {} media".format(enc))
                return False
            if enc == "MPEG4-GENERIC":
                m = with_constant_duration(m)
            ordered[idx] = "\r\n".join(m) + "\r\n"
            rates[idx] = clock_rate_of(m)
        text = "\r\n".join(session) + "\r\n"
        for idx in range(self.n_streams()):
            if idx not in ordered:
                log("ANNOUNCE has no media for depay{}: placeholder (never SETUP)".format(idx))
            text += ordered.get(idx, PLACEHOLDER[idx])
        self.clock_rates = rates
        res, fixed = GstSdp.SDPMessage.new_from_text(text)
        if res != GstSdp.SDPResult.OK:
            log("refusing ANNOUNCE: cannot re-parse the SDP")
            return False
        return GstRtspServer.RTSPMedia.do_handle_sdp(self, fixed)


def cut_streams_without_transport(client, ctx):
    """At RECORD: release the muxer pad of every stream the publisher did not SETUP."""
    sessmedia = ctx.sessmedia
    media = ctx.media
    if sessmedia is None or media is None or not isinstance(media, AvRecordMedia):
        return GstRtsp.RTSPStatusCode.OK
    bin_ = media.get_element()
    mux = bin_.get_by_name("mux")
    for idx in range(media.n_streams()):
        if sessmedia.get_transport(idx) is not None:
            continue
        queue = bin_.get_by_name("q{}".format(idx))
        src = queue.get_static_pad("src") if queue is not None else None
        peer = src.get_peer() if src is not None else None
        if peer is None:
            continue
        src.unlink(peer)
        mux.release_request_pad(peer)
        log("stream {} was not SETUP: cut from the muxer".format(idx))
    return GstRtsp.RTSPStatusCode.OK


def log_record_session(factory, media):
    # One line per publisher session (each ANNOUNCE makes a new media): a test that restarts
    # the server counts the sessions each incarnation took.
    log("record session: " + OPTIONS.out)


def on_record_media(factory, media):
    LATEST_RECORD.update(media=media)
    # After the EOS at teardown reached the file sink and the pipeline stopped: the file is
    # complete (a test waits for this line).
    media.connect("unprepared", lambda m: log("recording finalised: " + OPTIONS.out))


def on_client_connected(server, client):
    client.connect("pre-record-request", cut_streams_without_transport)


def with_sink_options(launch):
    """With --unbuffered, every file sink writes each buffer at once: filesink's default
    buffered writes keep up to 64 KiB in memory between seeks (matroskamux seeks back once per
    cluster to write its size), which a killed server never writes (measured: a killed
    Matroska recording lacked its last cluster, a whole GOP)."""
    if OPTIONS.unbuffered:
        return launch.replace("filesink location=", "filesink buffer-mode=unbuffered location=")
    return launch


def av_record_launch(out, relay_ports):
    if relay_ports is None:
        return (
            "( rtph264depay name=depay0 ! h264parse ! queue name=q0 ! mux. "
            "rtpmp4gdepay name=depay1 ! aacparse ! queue name=q1 ! mux. "
            "matroskamux name=mux ! filesink location={} sync=false async=false )"
        ).format(out)
    vport, aport = relay_ports
    return (
        "( rtph264depay name=depay0 ! h264parse ! tee name=vt "
        "vt. ! queue name=q0 ! mux. "
        "vt. ! queue ! h264parse config-interval=-1 ! rtph264pay pt=96 config-interval=-1 ! "
        "udpsink host=127.0.0.1 port={vport} sync=false async=false "
        "rtpmp4gdepay name=depay1 ! aacparse ! tee name=at "
        "at. ! queue name=q1 ! mux. "
        "at. ! queue ! rtpmp4gpay name=relaypay1 pt=97 ! "
        "udpsink host=127.0.0.1 port={aport} sync=false async=false "
        "matroskamux name=mux ! filesink location={out} sync=false async=false )"
    ).format(vport=vport, aport=aport, out=out)


class AvPlayFactory(GstRtspServer.RTSPMediaFactory):
    """The PLAY relay of the --audio mount: video as pay0, audio as pay1.

    The audio RTP caps (AudioSpecificConfig) come from the relay payloader of the newest RECORD
    pipeline, so the mount can be DESCRIBEd only once a publisher is sending."""

    def __init__(self, vport, aport):
        GstRtspServer.RTSPMediaFactory.__init__(self)
        self.vport = vport
        self.aport = aport

    def audio_caps(self):
        deadline = GLib.get_monotonic_time() + 5 * 1000000
        while GLib.get_monotonic_time() < deadline:
            media = LATEST_RECORD["media"]
            pay = media.get_element().get_by_name("relaypay1") if media is not None else None
            pad = pay.get_static_pad("src") if pay is not None else None
            caps = pad.get_current_caps() if pad is not None else None
            if caps is not None:
                s = caps.get_structure(0).copy()
                for field in ("ssrc", "timestamp-offset", "seqnum-offset"):
                    s.remove_field(field)
                return s.to_string()
            GLib.usleep(20000)
        return None

    def do_create_element(self, url):
        acaps = self.audio_caps()
        if acaps is None:
            log("PLAY relay: no audio caps yet (no publisher sending AAC)")
            return None
        log("PLAY relay audio caps: " + acaps)
        launch = (
            "( udpsrc port={vport} caps=\"application/x-rtp,media=video,clock-rate=90000,"
            "encoding-name=H264,payload=96\" ! rtpjitterbuffer mode=synced latency=200 ! "
            "rtph264depay ! h264parse config-interval=-1 ! "
            "rtph264pay name=pay0 pt=96 config-interval=-1 "
            "udpsrc port={aport} caps=\"{acaps}\" ! rtpjitterbuffer mode=synced latency=200 ! "
            "rtpmp4gdepay ! aacparse ! "
            "rtpmp4gpay name=pay1 pt=97 )"
        ).format(vport=self.vport, aport=self.aport, acaps=acaps.replace('"', '\\"'))
        try:
            return Gst.parse_launch_full(launch, None, Gst.ParseFlags.PLACE_IN_BIN)
        except GLib.Error as e:
            log("PLAY relay: cannot build {}: {}".format(launch, e))
            return None


def main():
    global OPTIONS
    ap = argparse.ArgumentParser()
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument("--mount", default="/record")
    ap.add_argument(
        "--out", required=True, help="file written from what arrives (Annex B; --audio: Matroska)"
    )
    ap.add_argument("--user")
    ap.add_argument("--password")
    ap.add_argument("--auth", choices=["basic", "digest"], default="digest")
    ap.add_argument("--relay-mount", help="also serve what arrives for PLAY at this mount")
    ap.add_argument("--protocols", choices=["tcp", "udp", "both"], default="both")
    ap.add_argument(
        "--audio", action="store_true", help="take H.264 and AAC, write both into Matroska"
    )
    # Jitterbuffer settings of the --audio mount (see the module docstring).
    ap.add_argument("--latency", type=int, default=500, help="ms (--audio only)")
    ap.add_argument(
        "--buffer-mode", type=int, default=4, help="0 none, 1 slave, 2 buffer, 4 synced (--audio)"
    )
    ap.add_argument("--min-ts-offset-ms", type=int, default=0, help="(--audio only)")
    ap.add_argument(
        "--sr-shift-ms", type=int, default=500, help="move sender reports later (--audio only)"
    )
    ap.add_argument(
        "--raw-rtcp", action="store_true", help="hand RTCP to rtpbin untouched (--audio only)"
    )
    ap.add_argument(
        "--unbuffered",
        action="store_true",
        help="write every buffer to the file at once (a killed server loses nothing it took)",
    )
    args = ap.parse_args()
    OPTIONS = args

    server = GstRtspServer.RTSPServer()
    server.set_address("127.0.0.1")
    server.set_service(str(args.port))
    # Readers that join during a TCP publish deadlock with the default single thread.
    server.get_thread_pool().set_max_threads(16)

    relay_port = None
    relay_ports = None
    record = GstRtspServer.RTSPMediaFactory()
    record.set_transport_mode(GstRtspServer.RTSPTransportMode.RECORD)
    if args.audio:
        if args.relay_mount:
            relay_ports = (free_udp_port(), free_udp_port())
        record.set_media_gtype(AvRecordMedia.__gtype__)
        record.set_launch(with_sink_options(av_record_launch(args.out, relay_ports)))
        record.set_latency(args.latency)
        record.connect("media-configure", on_record_media)
        server.connect("client-connected", on_client_connected)
    else:
        tail = (
            "h264parse ! video/x-h264,stream-format=byte-stream,alignment=au ! "
            "filesink location={} sync=false async=false".format(args.out)
        )
        if args.relay_mount:
            relay_port = free_udp_port()
            tail = (
                "h264parse config-interval=-1 ! "
                "video/x-h264,stream-format=byte-stream,alignment=au "
                "! tee name=t ! queue ! filesink location={} sync=false async=false "
                "t. ! queue ! rtph264pay pt=96 config-interval=-1 ! "
                "udpsink host=127.0.0.1 port={} sync=false async=false"
            ).format(args.out, relay_port)
        record.set_launch(with_sink_options("( rtph264depay name=depay0 ! {} )".format(tail)))
        record.set_latency(0)
    record.connect("media-configure", log_record_session)
    # EOS on teardown so the file is complete when the publisher leaves.
    record.set_eos_shutdown(True)
    protocols = {
        "tcp": GstRtsp.RTSPLowerTrans.TCP,
        "udp": GstRtsp.RTSPLowerTrans.UDP,
        "both": GstRtsp.RTSPLowerTrans.TCP | GstRtsp.RTSPLowerTrans.UDP,
    }[args.protocols]
    record.set_protocols(protocols)

    mounts = server.get_mount_points()
    role = None
    if args.user is not None:
        auth = GstRtspServer.RTSPAuth()
        token = GstRtspServer.RTSPToken()
        token.set_string("media.factory.role", "publisher")
        if args.auth == "basic":
            auth.add_basic(GstRtspServer.RTSPAuth.make_basic(args.user, args.password), token)
            auth.set_supported_methods(GstRtsp.RTSPAuthMethod.BASIC)
        else:
            auth.add_digest(args.user, args.password, token)
            auth.set_supported_methods(GstRtsp.RTSPAuthMethod.DIGEST)
        server.set_auth(auth)
        role = Gst.Structure.new_from_string(
            "publisher, media.factory.access=(boolean)true, media.factory.construct=(boolean)true"
        )
        record.add_role_from_structure(role)
    mounts.add_factory(args.mount, record)

    play = None
    if relay_ports is not None:
        play = AvPlayFactory(*relay_ports)
    elif relay_port is not None:
        play = GstRtspServer.RTSPMediaFactory()
        play.set_launch(
            "( udpsrc port={} caps=\"application/x-rtp,media=video,clock-rate=90000,"
            "encoding-name=H264,payload=96\" ! rtph264depay ! h264parse config-interval=-1 ! "
            "rtph264pay name=pay0 pt=96 config-interval=-1 )".format(relay_port)
        )
    if play is not None:
        play.set_shared(True)
        play.set_latency(0)
        if role is not None:
            play.add_role_from_structure(role)
        mounts.add_factory(args.relay_mount, play)

    if server.attach(None) == 0:
        print("ERROR cannot listen on port {}".format(args.port), flush=True)
        sys.exit(1)

    loop = GLib.MainLoop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        GLib.unix_signal_add(GLib.PRIORITY_DEFAULT, sig, loop.quit)
    print("READY {}".format(args.port), flush=True)
    loop.run()


if __name__ == "__main__":
    main()
