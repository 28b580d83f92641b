"""A real RTSP server for the live tests: GStreamer's gst-rtsp-server serving one MP4 clip.

Run it with the *system* Python, which has GStreamer's introspection bindings (python3-gi and
gir1.2-gst-rtsp-server-1.0 from Debian), not with mien's virtual environment::

    /usr/bin/python3 tests/rtsp_server.py --port 8554 --clip clip.mp4 [--user U --password P]

It serves the clip's H.264 video (as recorded, no re-encoding) at ``rtsp://127.0.0.1:PORT/clip``
on loopback, every client from the clip's start, and prints ``ready`` on stdout once it
listens. With ``--user``/``--password`` a client must log in (HTTP Basic); wrong credentials
get ``401 Unauthorized``. It runs until killed.
"""

from __future__ import annotations

import argparse
import sys

import gi

gi.require_version("Gst", "1.0")
gi.require_version("GstRtspServer", "1.0")
from gi.repository import GLib, Gst, GstRtspServer  # noqa: E402


def main() -> int:
    p = argparse.ArgumentParser()
    p.add_argument("--port", type=int, required=True)
    p.add_argument("--clip", required=True)
    p.add_argument("--path", default="/clip")
    p.add_argument("--user")
    p.add_argument("--password")
    args = p.parse_args()
    Gst.init(None)
    server = GstRtspServer.RTSPServer.new()
    server.set_address("127.0.0.1")
    server.set_service(str(args.port))
    factory = GstRtspServer.RTSPMediaFactory.new()
    location = args.clip.replace("\\", "\\\\").replace('"', '\\"')
    factory.set_launch(
        f'( filesrc location="{location}" ! qtdemux name=d '
        "d.video_0 ! queue ! h264parse ! rtph264pay name=pay0 pt=96 config-interval=1 )"
    )
    factory.set_shared(False)  # each client gets the clip from its start
    if args.user is not None:
        auth = GstRtspServer.RTSPAuth()
        token = GstRtspServer.RTSPToken()
        token.set_string("media.factory.role", "viewer")
        auth.add_basic(GstRtspServer.RTSPAuth.make_basic(args.user, args.password or ""), token)
        server.set_auth(auth)
        permissions = GstRtspServer.RTSPPermissions()
        permissions.add_permission_for_role("viewer", "media.factory.access", True)
        permissions.add_permission_for_role("viewer", "media.factory.construct", True)
        factory.set_permissions(permissions)
    server.get_mount_points().add_factory(args.path, factory)
    if server.attach(None) == 0:
        print(f"cannot listen on 127.0.0.1:{args.port}", file=sys.stderr, flush=True)
        return 1
    print("ready", flush=True)
    GLib.MainLoop().run()
    return 0


if __name__ == "__main__":
    sys.exit(main())
