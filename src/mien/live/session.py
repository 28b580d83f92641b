"""A live session: decode a stream, find and track faces, emit events (and redact).

:class:`LiveSession` is the library entry point. It runs the :class:`StreamDecoder` thread,
takes frames from the bounded :class:`FrameBuffer` and, per frame:

* **analysis** (``redact=None``): when the loop is caught up, the frame is analysed with a
  :class:`mien.FaceAnalyzer`, its faces are tracked and a ``frame`` event is emitted; when
  more frames are already waiting, the frame is skipped (counted in ``dropped``): the tracker
  carries faces across skipped frames, so track ids stay stable;
* **redaction** (``redact=RedactOptions(...)``): every frame is written to ``output`` with its
  faces covered. When caught up, faces are detected in the frame; when behind, the frame is
  covered where the tracker predicts the faces are (cheap), so frames keep flowing with a
  bounded delay. Frames only leave mien through :func:`mien.redact.redact_regions`.

  Redaction fails closed by the same rule as file redaction (:mod:`mien.redact.suspect`): a
  frame the decoder says may be damaged (``DecodedFrame.damage``) or that was not searched
  (the detector failed on it, or it was covered by prediction alone for longer than
  ``detect_every_ms``) is *suspect*; ``LiveOptions.on_suspect`` covers it harder (default),
  stops the session, or keeps it, and its ``frame`` event lists the reasons and the action.

Library use (one thread iterates; any thread may call :meth:`LiveSession.stop`)::

    session = LiveSession("rtsp://camera/stream", analyzer_options=AnalyzerOptions())
    for event in session.events():        # LiveEvent objects, event.to_dict() is JSON-ready
        print(event.to_dict())
"""

from __future__ import annotations

import contextlib
import threading
import time
from collections import deque
from collections.abc import Iterator
from dataclasses import replace
from typing import Any

import numpy as np
import numpy.typing as npt

from mien.errors import LiveOutputError, MienError, SuspectFramesError
from mien.live.buffer import FrameBuffer
from mien.live.decoder import AudioPacket, DecodedFrame, Notice, StreamDecoder, log
from mien.live.events import EventCounter, LiveEvent, iso_time
from mien.live.options import LiveOptions
from mien.live.sink import LiveSink
from mien.live.source import StreamSource
from mien.live.tracking import LiveTracks
from mien.options import AnalyzerOptions
from mien.types import Faces

#: In redaction, a frame is searched for faces at least this often (ms of stream time), even
#: when analysis is behind.
MAX_UNSEARCHED_MS = 1000.0

#: Why the decoder ended -> the code of the session's ``error`` event.
_END_CODES = {
    "unreachable": "StreamUnreachable",
    "unauthorized": "StreamUnauthorized",
    "source_lost": "StreamLost",
    "error": "StreamError",
}

#: Seconds between two ``dropped`` events (the summary has the exact total).
DROPPED_EVERY_S = 1.0


class LiveSession:
    """One live stream, analysed (or redacted) until it ends or :meth:`stop` is called."""

    def __init__(
        self,
        source: str | StreamSource,
        *,
        analyzer_options: AnalyzerOptions | None = None,
        options: LiveOptions | None = None,
        redact: Any = None,
        output: str | None = None,
        rules: Any = None,
        analyzer: Any = None,
    ) -> None:
        self.source = source if isinstance(source, StreamSource) else StreamSource(source)
        self.options = options if options is not None else LiveOptions()
        self.redact = redact
        if redact is not None and output is None:
            raise ValueError("redaction needs an output (file, folder, rtmp:// or rtsp://)")
        if redact is None and output is not None:
            raise ValueError("an output is only written when redacting")
        self.output = output
        self.rules = _load_rules(rules)
        if analyzer_options is None:
            analyzer_options = _default_analyzer_options(redact is not None)
        if self.rules is not None:
            if redact is not None:
                raise ValueError("rules are evaluated when analysing, not when redacting")
            features = self.rules.features_with(analyzer_options.features)
            analyzer_options = replace(analyzer_options, features=features)
        self.analyzer_options = analyzer_options
        self._analyzer = analyzer
        self._stop = threading.Event()
        self._buffer = FrameBuffer(self.options.queue_frames)
        self._decoder: StreamDecoder | None = None
        self._sink: LiveSink | None = None
        self._ev = EventCounter()
        self._tracks: LiveTracks | None = None
        self._track_total = 0
        self._last_detect_ms = -1e18  # last frame the detector was run on
        self._last_searched_ms = -1e18  # last frame it searched (did not fail on)
        self._suspect_frames = 0
        self._suspect_reasons: dict[str, int] = {}
        self._latencies: deque[float] = deque(maxlen=200_000)
        self._skipped = 0
        self._dropped_reported = 0
        self._last_dropped_event = 0.0
        self._analysed = 0
        self._predicted_frames = 0
        self._held_frames = 0
        self._detector_failures = 0
        self._gaps: list[dict[str, Any]] = []
        self._reconnects = 0
        self._end_reason = "end"
        self._error: dict[str, str] | None = None
        self._started_wall = time.time()
        self._started = time.monotonic()
        self._stream_info: dict[str, Any] | None = None
        self._active_flags: set[tuple[str, int | None, int | None]] = set()
        self._flags = 0
        self._cleaned = False
        self.summary: dict[str, Any] | None = None

    # -- control ---------------------------------------------------------------------------

    def stop(self) -> None:
        """Ask the session to end: the generator finishes with ``track_ended`` + ``summary``."""
        if self._end_reason == "end":  # set here, not in the loop: the loop may never look again
            self._end_reason = "stopped"
        self._stop.set()
        if self._decoder is not None:
            self._decoder.stop()
        self._buffer.close()

    @property
    def stopped(self) -> bool:
        return self._stop.is_set()

    # -- the event generator ---------------------------------------------------------------

    def events(self) -> Iterator[LiveEvent]:
        """Events as they happen (see :mod:`mien.live.events`); ``summary`` comes last."""
        try:
            self._prepare()
            yield from self._run()
        except _EndSession:
            pass
        except LiveOutputError as exc:
            self._fail(exc.code, exc.message, "output_error")
            yield self._ev.make("error", code=exc.code, message=exc.message)
        except MienError as exc:
            reason = "suspect_frame" if isinstance(exc, SuspectFramesError) else "error"
            self._fail(exc.code, exc.message, reason)
            yield self._ev.make("error", code=exc.code, message=exc.message)
        else:
            pass
        try:
            yield from self._finish()
        finally:
            self._cleanup()

    # -- internals -------------------------------------------------------------------------

    def _prepare(self) -> None:
        if self._analyzer is None:
            from mien.track.tracker import TrackerOptions
            from mien.video.analyzer import VideoAnalyzer, VideoOptions

            side = self.options.detect_max_side
            self._analyzer = VideoAnalyzer(
                self.analyzer_options,
                VideoOptions(
                    detect_side=0 if side is None else side,
                    tracker=TrackerOptions(max_missed=self.options.track_max_missed),
                ),
            )
        self._analyzer.reset()
        self._tracks = LiveTracks(self._analyzer.tracker, hold_ms=self.options.hold_ms)
        if self.output is not None:
            self._sink = LiveSink(
                self.output,
                hls_time=self.options.hls_time,
                hls_list_size=self.options.hls_list_size,
            )
        self._decoder = StreamDecoder(
            self.source,
            self._buffer,
            reconnect=self.options.reconnect,
            realtime=self.options.realtime,
            audio=self.redact is not None and self.options.audio,
        )
        self._warm_up()
        self._started = time.monotonic()
        self._started_wall = time.time()
        self._decoder.start()

    def _warm_up(self) -> None:
        """Run the models once before the stream opens, so the first frames are not late."""
        dummy = np.zeros((64, 64, 3), np.uint8)
        self._analyzer.analyzer.analyze_array(dummy)

    def _fail(self, code: str, message: str, reason: str) -> None:
        self._error = {"code": code, "message": message}
        self._end_reason = reason
        self.stop()

    def _run(self) -> Iterator[LiveEvent]:
        opts = self.options
        buf = self._buffer
        while True:
            if self._stop.is_set() and self._end_reason == "end":
                self._end_reason = "stopped"
            if self._stop.is_set():
                return
            if opts.duration_s is not None and time.monotonic() - self._started >= opts.duration_s:
                self._end_reason = "duration"
                self.stop()
                return
            item = buf.get(timeout=0.2)
            if item is None:
                if buf.closed:
                    return
                continue
            _, obj = item
            if isinstance(obj, Notice):
                yield from self._notice(obj)
                continue
            if isinstance(obj, AudioPacket):
                if self._sink is not None and self._sink.opened:
                    self._sink.write_audio(obj.packet, obj.timestamp_ms)
                continue
            assert isinstance(obj, DecodedFrame)
            behind = buf.frames_waiting > 0
            if self.redact is None:
                if behind:
                    self._skipped += 1
                else:
                    yield from self._analyse(obj)
            elif behind and (time.monotonic() - obj.arrived) * 1000.0 > opts.max_delay_ms:
                self._skipped += 1  # too late to show: dropped (never written, never leaked)
            else:
                # Search when caught up; when behind, still search every detect_every_ms of
                # stream time unless that would let the backlog grow past a couple of frames,
                # and in any case after MAX_UNSEARCHED_MS: a face that enters the picture must
                # be found even if the queue overflows for it (dropped frames never leak).
                since = obj.timestamp_ms - self._last_detect_ms
                due = since >= opts.detect_every_ms and buf.frames_waiting <= 2
                overdue = since >= max(MAX_UNSEARCHED_MS, opts.detect_every_ms)
                yield from self._redact(obj, detect=not behind or due or overdue)
            yield from self._dropped(force=False)
            if opts.max_frames is not None and obj.index + 1 >= opts.max_frames:
                self._end_reason = "max_frames"
                self.stop()
                return

    def _notice(self, notice: Notice) -> Iterator[LiveEvent]:
        data = dict(notice.data)
        if notice.kind == "connected":
            audio_stream = data.pop("audio_stream", None)
            if self._stream_info is None:
                self._stream_info = data
                yield self._ev.make(
                    "stream_started",
                    source=self.source.display,
                    kind=self.source.kind,
                    mode="redact" if self.redact is not None else "analyze",
                    output=self.output,
                    **{k: v for k, v in data.items() if k != "connection"},
                )
                if self._sink is not None:
                    self._sink.open(
                        int(data["width"]), int(data["height"]), data.get("fps"), audio_stream
                    )
            else:
                gap = {
                    "gap_s": data.get("gap_s"),
                    "last_timestamp_ms": _r(data.get("last_timestamp_ms")),
                    "connection": data.get("connection"),
                }
                self._gaps.append(gap)
                yield self._ev.make("gap", **gap)
        elif notice.kind == "reconnecting":
            self._reconnects += 1
            yield self._ev.make("reconnecting", **data)
        elif notice.kind == "ended":
            reason = data.get("reason", "end")
            if not self._stop.is_set() or self._end_reason == "end":
                self._end_reason = str(reason)
            if reason in _END_CODES:
                msg = data.get("message") or "the stream could not be read"
                code = _END_CODES[reason]
                if reason == "unauthorized":
                    msg = f"the server refused the credentials ({msg})"
                self._error = {"code": code, "message": str(msg)}
                yield self._ev.make("error", code=code, message=str(msg))

    def _frame_fields(self, f: DecodedFrame) -> dict[str, Any]:
        return {
            "frame_index": f.index,
            "timestamp_ms": _r(f.timestamp_ms),
            "captured_at": iso_time(f.captured_at),
        }

    def _process(self, f: DecodedFrame) -> Faces:
        """Detect (and describe) the faces of a frame and track them."""
        # track summaries count frames as decoded, not as analysed
        faces: Faces = self._analyzer.process(f.rgb, f.timestamp_ms, frame_index=f.index)
        return faces

    def _analyse(self, f: DecodedFrame) -> Iterator[LiveEvent]:
        faces = self._process(f)
        ids = faces.track_ids if faces.track_ids is not None else np.zeros(0, np.int64)
        self._analysed += 1
        yield from self._track_events(f, faces)
        fields = self._frame_fields(f)
        include_mesh = "mesh" in self.analyzer_options.features
        fields["faces"] = faces.to_records(include_mesh=include_mesh)
        flag_events: list[dict[str, Any]] = []
        if self.rules is not None:
            h, w = f.rgb.shape[:2]
            found = self.rules.evaluate_faces(
                faces, int(w), int(h), frame=f.index, timestamp_ms=f.timestamp_ms
            )
            flags = [_flag_dict(x, ids) for x in found]
            fields["flags"] = flags
            flag_events = self._rising_flags(f, flags)
        latency = (time.monotonic() - f.arrived) * 1000.0
        self._latencies.append(latency)
        fields["latency_ms"] = round(latency, 1)
        yield self._ev.make("frame", **fields)
        for data in flag_events:
            yield self._ev.make("flag", **data)

    def _rising_flags(self, f: DecodedFrame, flags: list[dict[str, Any]]) -> list[dict[str, Any]]:
        now = {(str(x.get("rule")), x.get("face"), x.get("track_id")) for x in flags}
        out = []
        for x in flags:
            key = (str(x.get("rule")), x.get("face"), x.get("track_id"))
            if key not in self._active_flags:
                self._flags += 1
                out.append({**self._frame_fields(f), **x})
        self._active_flags = now
        return out

    def _redact(self, f: DecodedFrame, *, detect: bool) -> Iterator[LiveEvent]:
        from mien.redact.draw import redact_regions
        from mien.redact.suspect import NOT_SEARCHED, cover_whole_frame, whole_frame_box

        assert self._sink is not None and self._tracks is not None
        opts = self.options
        ts = f.timestamp_ms
        regions: list[dict[str, Any]] = []
        suspect = list(f.damage)
        detected = False
        if detect:
            self._last_detect_ms = ts
            try:
                faces = self._process(f)
            except Exception as exc:  # the detector failed on this frame: it is not searched
                self._detector_failures += 1
                if self._detector_failures == 1:
                    log.warning("face detection failed (frames covered as suspect): %s", exc)
                suspect.append(NOT_SEARCHED)
            else:
                detected = True
                self._last_searched_ms = ts
                boxes, scores = faces.boxes, faces.scores
                ids = faces.track_ids if faces.track_ids is not None else np.zeros(0, np.int64)
                self._analysed += 1
                yield from self._track_events(f, faces)
                regions += [
                    _region(boxes[i], scores[i], "detected", int(ids[i])) for i in range(len(ids))
                ]
                regions += [_region(b, s, "tracked", t) for t, b, s in self._tracks.missing(ts)]
        if not detected:
            self._predicted_frames += 1
            regions += [_region(b, s, "tracked", t) for t, b, s in self._tracks.predicted(ts)]
            if NOT_SEARCHED not in suspect and ts - self._last_searched_ms > opts.detect_every_ms:
                # covered only by prediction for longer than detect_every_ms allows
                suspect.append(NOT_SEARCHED)
        # the last known area of every recent face, besides where it is predicted to be (faces
        # detected in this very frame need nothing more)
        have = {r["track_id"] for r in regions if r["source"] == "detected"}
        held = [_region(b, s, "held", t) for t, b, s in self._tracks.held(ts) if t not in have]
        if held:
            self._held_frames += 1
        regions += held
        action = self._suspect_action(f, tuple(dict.fromkeys(suspect)), known=bool(regions))
        if action == "covered_regions":
            regions += _grown(regions)
        if action == "covered_frame":
            h, w = f.rgb.shape[:2]
            regions.append(_region(whole_frame_box(w, h)[0], None, "whole_frame", None))
            covered = cover_whole_frame(f.rgb, self.redact)
        else:
            boxes_out = np.array([r["box"] for r in regions], np.float32).reshape(-1, 4)
            covered = redact_regions(f.rgb, boxes_out, self.redact)
        self._sink.write_frame(covered, ts)
        latency = (time.monotonic() - f.arrived) * 1000.0
        self._latencies.append(latency)
        fields = self._frame_fields(f)
        fields["detected"] = detected
        fields["covered"] = regions
        if action is not None:
            fields["suspect"] = list(dict.fromkeys(suspect))
            fields["action"] = action
        fields["latency_ms"] = round(latency, 1)
        yield self._ev.make("frame", **fields)

    def _suspect_action(
        self, f: DecodedFrame, reasons: tuple[str, ...], *, known: bool
    ) -> str | None:
        """What ``on_suspect`` does with a frame (None: not suspect; ``known``: some region of
        a face is known in it); counts it; raises :class:`SuspectFramesError` for "fail"."""
        if not reasons:
            return None
        self._suspect_frames += 1
        for r in reasons:
            self._suspect_reasons[r] = self._suspect_reasons.get(r, 0) + 1
        policy = self.options.on_suspect
        if policy == "fail":
            raise SuspectFramesError(
                f"frame {f.index} at {f.timestamp_ms:.0f} ms may show an uncovered face "
                f"({', '.join(reasons)}); stopped (on_suspect=fail), the output so far is closed"
            )
        if policy == "keep":
            return "kept"
        # the regions known in this frame (detected, tracked, held) are grown; with none, the
        # whole frame is covered
        return "covered_regions" if known else "covered_frame"

    def _track_events(self, f: DecodedFrame, faces: Faces) -> Iterator[LiveEvent]:
        assert self._tracks is not None
        ids = faces.track_ids if faces.track_ids is not None else np.zeros(0, np.int64)
        started, ended = self._tracks.observe(ids, faces.boxes, faces.scores, f.timestamp_ms)
        for tid in started:
            i = int(np.nonzero(ids == tid)[0][0])
            self._track_total += 1
            yield self._ev.make(
                "track_started",
                track_id=tid,
                frame_index=f.index,
                timestamp_ms=_r(f.timestamp_ms),
                box=[round(float(v), 1) for v in faces.boxes[i]],
                score=round(float(faces.scores[i]), 4),
            )
        for tid in ended:
            yield self._track_ended(tid)

    def _track_ended(self, tid: int) -> LiveEvent:
        """``track_ended`` with the video-mode summary of the track (then forgotten)."""
        track = self._analyzer.pop_summary(tid, self.source.display)
        data: dict[str, Any] = {"track_id": tid}
        if track is not None:
            summary = track.to_dict()
            summary.pop("kind", None)
            summary.pop("source", None)
            data.update(summary)
        return self._ev.make("track_ended", **data)

    def _dropped(self, *, force: bool) -> Iterator[LiveEvent]:
        total = self._buffer.dropped + self._skipped
        if total <= self._dropped_reported:
            return
        now = time.monotonic()
        if not force and now - self._last_dropped_event < DROPPED_EVERY_S:
            return
        yield self._ev.make(
            "dropped",
            count=total - self._dropped_reported,
            total=total,
            queue_overflow=self._buffer.dropped,
            skipped=self._skipped,
        )
        self._dropped_reported = total
        self._last_dropped_event = now

    def _finish(self) -> Iterator[LiveEvent]:
        if self._decoder is not None:
            self._decoder.stop()
        yield from self._dropped(force=True)
        if self._tracks is not None:
            for tid in self._tracks.close_all():
                yield self._track_ended(tid)
        if self._sink is not None:
            try:
                self._sink.close()
            except LiveOutputError as exc:
                self._error = {"code": exc.code, "message": exc.message}
                yield self._ev.make("error", code=exc.code, message=exc.message)
        self.summary = self._summary()
        yield self._ev.make("summary", **self.summary)

    def _summary(self) -> dict[str, Any]:
        dec = self._decoder
        lat = np.array(self._latencies, np.float64)
        out: dict[str, Any] = {
            "source": self.source.display,
            "mode": "redact" if self.redact is not None else "analyze",
            "reason": self._end_reason,
            "started_at": iso_time(self._started_wall),
            "duration_s": round(time.monotonic() - self._started, 3),
            "frames_decoded": dec.frames_decoded if dec is not None else 0,
            "frames_analysed": self._analysed,
            "frames_dropped": self._buffer.dropped + self._skipped,
            "queue_overflow": self._buffer.dropped,
            "frames_skipped": self._skipped,
            "decode_errors": dec.decode_errors if dec is not None else 0,
            "reconnects": self._reconnects,
            "gaps": self._gaps,
            "tracks": self._track_total,
            "flags": self._flags,
            "latency_ms": {
                "p50": round(float(np.percentile(lat, 50)), 1) if lat.size else None,
                "p99": round(float(np.percentile(lat, 99)), 1) if lat.size else None,
                "max": round(float(lat.max()), 1) if lat.size else None,
            },
        }
        if self.redact is not None:
            out["output"] = self.output
            out["frames_written"] = self._sink.frames_written if self._sink else 0
            out["frames_predicted"] = self._predicted_frames
            out["frames_held"] = self._held_frames
            out["detector_failures"] = self._detector_failures
            out["suspect_frames"] = self._suspect_frames
            out["suspect_reasons"] = dict(sorted(self._suspect_reasons.items()))
        if self._error is not None:
            out["error"] = self._error
        return out

    def _cleanup(self) -> None:
        if self._cleaned:
            return
        self._cleaned = True
        self._stop.set()
        if self._decoder is not None:
            self._decoder.stop()
            self._buffer.close()
            self._decoder.join(timeout=15.0)
        if self._sink is not None:
            with contextlib.suppress(Exception):
                self._sink.close()


class _EndSession(Exception):
    pass


def _default_analyzer_options(redacting: bool) -> AnalyzerOptions:
    if redacting:
        from mien.redact.options import REDACT_THRESHOLD

        return AnalyzerOptions(features=("detection",), threshold=REDACT_THRESHOLD)
    return AnalyzerOptions()


def _load_rules(rules: Any) -> Any:
    if rules is None:
        return None
    if hasattr(rules, "evaluate"):
        return rules
    try:
        from mien.rules import load_rules
    except ImportError as exc:
        raise MienError("rules profiles are not available in this version of mien") from exc
    return load_rules(rules)


def _flag_dict(flag: Any, ids: npt.NDArray[np.int64]) -> dict[str, Any]:
    if hasattr(flag, "to_dict"):
        d = dict(flag.to_dict())
    else:
        from dataclasses import asdict, is_dataclass

        if is_dataclass(flag) and not isinstance(flag, type):
            d = dict(asdict(flag))
        else:
            d = {"rule": str(flag)}
    if "rule" not in d:
        d["rule"] = d.get("rule_id", d.get("id"))
    face = d.get("face", d.get("face_index"))
    d["face"] = face
    if isinstance(face, int) and 0 <= face < len(ids):
        d["track_id"] = int(ids[face])
    return d


def _region(box: Any, score: Any, source: str, track_id: int | None) -> dict[str, Any]:
    return {
        "box": [round(float(v), 1) for v in np.asarray(box).reshape(4)],
        "score": None if score is None else round(float(score), 4),
        "source": source,
        "track_id": track_id,
    }


def _grown(regions: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The regions grown :data:`mien.redact.suspect.SUSPECT_GROWTH` times (``"suspect"``)."""
    from mien.redact.suspect import grow_boxes

    if not regions:
        return []
    grown = grow_boxes([r["box"] for r in regions])
    pairs = zip(grown, regions, strict=True)
    return [_region(b, r["score"], "suspect", r["track_id"]) for b, r in pairs]


def _r(v: float | None) -> float | None:
    return None if v is None else round(float(v), 1)
