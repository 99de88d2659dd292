#!/usr/bin/python3
"""An RTSP server in RECORD mode for protocol tests, built on GStreamer's RTSP server library.

A publisher ANNOUNCEs H.264 at rtsp://127.0.0.1:PORT/MOUNT; the server depayloads it and writes
the Annex B elementary stream to --out, finalised when the publisher tears down (EOS). With
--relay-mount, what arrives is also re-served for PLAY at that second mount, so a reader can pull
what was recorded (a RECORD mount itself refuses DESCRIBE).

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
from gi.repository import GLib, Gst, GstRtsp, GstRtspServer  # noqa: E402


def free_udp_port():
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument("--mount", default="/record")
    ap.add_argument("--out", required=True, help="Annex B file written from what arrives")
    ap.add_argument("--user")
    ap.add_argument("--password")
    ap.add_argument("--auth", choices=["basic", "digest"], default="digest")
    ap.add_argument("--relay-mount", help="also serve what arrives for PLAY at this mount")
    ap.add_argument("--protocols", choices=["tcp", "udp", "both"], default="both")
    args = ap.parse_args()

    Gst.init(None)
    server = GstRtspServer.RTSPServer()
    server.set_address("127.0.0.1")
    server.set_service(str(args.port))
    # Readers that join during a TCP publish deadlock with the default single thread.
    server.get_thread_pool().set_max_threads(16)

    tail = (
        "h264parse ! video/x-h264,stream-format=byte-stream,alignment=au ! "
        "filesink location={} sync=false async=false".format(args.out)
    )
    relay_port = None
    if args.relay_mount:
        relay_port = free_udp_port()
        tail = (
            "h264parse config-interval=-1 ! video/x-h264,stream-format=byte-stream,alignment=au "
            "! tee name=t ! queue ! filesink location={} sync=false async=false "
            "t. ! queue ! rtph264pay pt=96 config-interval=-1 ! "
            "udpsink host=127.0.0.1 port={} sync=false async=false"
        ).format(args.out, relay_port)

    record = GstRtspServer.RTSPMediaFactory()
    record.set_transport_mode(GstRtspServer.RTSPTransportMode.RECORD)
    record.set_launch("( rtph264depay name=depay0 ! {} )".format(tail))
    record.set_latency(0)
    # EOS on teardown so the file is complete when the publisher leaves.
    record.set_eos_shutdown(True)
    protocols = {
        "tcp": GstRtsp.RTSPLowerTrans.TCP,
        "udp": GstRtsp.RTSPLowerTrans.UDP,
        "both": GstRtsp.RTSPLowerTrans.TCP | GstRtsp.RTSPLowerTrans.UDP,
    }[args.protocols]
    record.set_protocols(protocols)

    mounts = server.get_mount_points()
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

    if relay_port is not None:
        play = GstRtspServer.RTSPMediaFactory()
        play.set_launch(
            "( udpsrc port={} caps=\"application/x-rtp,media=video,clock-rate=90000,"
            "encoding-name=H264,payload=96\" ! rtph264depay ! h264parse config-interval=-1 ! "
            "rtph264pay name=pay0 pt=96 config-interval=-1 )".format(relay_port)
        )
        play.set_shared(True)
        play.set_latency(0)
        if args.user is not None:
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
