"""A live session: decode a stream, find and track faces, emit events (and redact).

:class:`LiveSession` is the library entry point. It runs the :class:`StreamDecoder` thread,
takes frames from the bounded :class:`FrameBuffer` and, per frame, does what
:func:`mien.live.schedule.schedule` decides:

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
import os
import threading
import time
from collections.abc import Iterator
from dataclasses import replace
from typing import TYPE_CHECKING, Any, Literal

import numpy as np
import numpy.typing as npt

from mien.errors import LiveOutputError, MienError, SuspectFramesError
from mien.live.buffer import FrameBuffer
from mien.live.decoder import AudioPacket, DecodedFrame, Notice, StreamDecoder, log
from mien.live.events import (
    AnalysedFrame,
    ErrorEvent,
    EventCounter,
    FlagRaised,
    FrameRef,
    Gap,
    LiveEvent,
    Reconnecting,
    RedactedFrame,
    Region,
    StreamStarted,
    SuspectAction,
    TrackEnded,
    TrackStarted,
    iso_time,
    round_box,
    round_ms,
)
from mien.live.options import LiveOptions
from mien.live.schedule import FrameState, schedule
from mien.live.sink import LiveSink
from mien.live.source import StreamSource
from mien.live.stats import RedactionCounts, SessionStats, SessionSummary
from mien.live.tracking import LiveTracks
from mien.options import AnalyzerOptions
from mien.types import ErrorInfo, Faces

if TYPE_CHECKING:
    from mien.redact.options import RedactOptions
    from mien.rules import RuleSet
    from mien.video.analyzer import VideoAnalyzer

#: Why the decoder ended -> the code of the session's ``error`` event.
_END_CODES = {
    "unreachable": "StreamUnreachable",
    "unauthorized": "StreamUnauthorized",
    "source_lost": "StreamLost",
    "error": "StreamError",
}


class LiveSession:
    """One live stream, analysed (or redacted) until it ends or :meth:`stop` is called.

    ``rules``: a :class:`mien.rules.RuleSet`, or what :func:`mien.rules.load_rules` reads (a
    profile name, YAML text, a file); analysis only. ``analyzer``: the
    :class:`mien.video.VideoAnalyzer` to use (default: one made from ``analyzer_options`` and
    ``options`` when the session starts).
    """

    def __init__(
        self,
        source: str | StreamSource,
        *,
        analyzer_options: AnalyzerOptions | None = None,
        options: LiveOptions | None = None,
        redact: RedactOptions | None = None,
        output: str | None = None,
        rules: RuleSet | str | os.PathLike[str] | None = None,
        analyzer: VideoAnalyzer | None = None,
    ) -> None:
        self.source = source if isinstance(source, StreamSource) else StreamSource(source)
        self.options = options if options is not None else LiveOptions()
        self.redact = redact
        if redact is not None and output is None:
            raise ValueError("redaction needs an output (file, folder, rtmp:// or rtsp://)")
        if redact is None and output is not None:
            raise ValueError("an output is only written when redacting")
        self.output = output
        self.mode: Literal["analyze", "redact"] = "redact" if redact is not None else "analyze"
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
        self._stats = SessionStats()
        self._last_detect_ms = -1e18  # last frame the detector was run on
        self._last_searched_ms = -1e18  # last frame it searched (did not fail on)
        self._end_reason = "end"
        self._error: ErrorInfo | None = None
        self._started_wall = time.time()
        self._started = time.monotonic()
        self._stream_started = False
        self._active_flags: set[tuple[str, int | None, int | None]] = set()
        self._cleaned = False
        self.summary: dict[str, Any] | None = None
        """The ``summary`` event's fields (JSON-ready) once the session has ended."""

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
        """Events as they happen (see :mod:`mien.live.events`); ``summary`` comes last.

        A caller may stop iterating at any point: closing the generator (what a ``break``
        leads to) still stops and joins the decoder thread and closes the output.
        """
        try:
            try:
                self._prepare()
                yield from self._run()
            except MienError as exc:  # LiveOutputError included
                if isinstance(exc, LiveOutputError):
                    reason = "output_error"
                elif isinstance(exc, SuspectFramesError):
                    reason = "suspect_frame"
                else:
                    reason = "error"
                self._fail(ErrorInfo(exc.code, exc.message), reason)
                yield self._ev.make(ErrorEvent(ErrorInfo(exc.code, exc.message)))
            yield from self._finish()
        finally:
            self._cleanup()

    def _run(self) -> Iterator[LiveEvent]:
        """The loop: take the next item, ask :func:`schedule` what to do with a frame, do it."""
        opts = self.options
        while not self._should_end():
            item = self._buffer.get(timeout=0.2)
            if item is None:
                if self._buffer.closed:
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
            state = FrameState(
                timestamp_ms=obj.timestamp_ms,
                waited_ms=(time.monotonic() - obj.arrived) * 1000.0,
                waiting=self._buffer.frames_waiting,
                last_detect_ms=self._last_detect_ms,
            )
            action = schedule(
                state,
                redacting=self.redact is not None,
                detect_every_ms=opts.detect_every_ms,
                max_delay_ms=opts.max_delay_ms,
            )
            if action == "drop":
                self._stats.skipped += 1  # redaction: too late to show, never written
            elif action == "analyse":
                yield from self._analyse(obj)
            else:
                yield from self._redact(obj, detect=action == "detect")
            yield from self._dropped(force=False)
            if opts.max_frames is not None and obj.index + 1 >= opts.max_frames:
                self._end_reason = "max_frames"
                self.stop()
                return

    # -- internals -------------------------------------------------------------------------

    def _prepare(self) -> None:
        if self._analyzer is None:
            from mien.track.tracker import TrackerOptions
            from mien.video.analyzer import VideoAnalyzer, VideoOptions

            self._analyzer = VideoAnalyzer(
                self.analyzer_options,
                VideoOptions(
                    detect_side=self.options.search.side,
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
        # run the models once before the stream opens, so the first frames are not late
        self._analyzer.analyzer.analyze_array(np.zeros((64, 64, 3), np.uint8))
        self._started = time.monotonic()
        self._started_wall = time.time()
        self._decoder.start()

    @property
    def _video(self) -> VideoAnalyzer:
        assert self._analyzer is not None, "events() makes the analyzer first"
        return self._analyzer

    def _fail(self, error: ErrorInfo, reason: str) -> None:
        self._error = error
        self._end_reason = reason
        self.stop()

    def _should_end(self) -> bool:
        """Whether the loop ends now (stopped, or ``duration_s`` is over)."""
        if self._stop.is_set():
            if self._end_reason == "end":
                self._end_reason = "stopped"
            return True
        duration = self.options.duration_s
        if duration is not None and time.monotonic() - self._started >= duration:
            self._end_reason = "duration"
            self.stop()
            return True
        return False

    def _notice(self, notice: Notice) -> Iterator[LiveEvent]:
        data = notice.data
        if notice.kind == "connected" and not self._stream_started:
            self._stream_started = True
            yield self._ev.make(
                StreamStarted(
                    source=self.source.display,
                    kind=self.source.kind,
                    mode=self.mode,
                    output=self.output,
                    width=int(data["width"]),
                    height=int(data["height"]),
                    fps=data.get("fps"),
                    video_codec=str(data["video_codec"]),
                    audio_codec=data.get("audio_codec"),
                )
            )
            if self._sink is not None:
                self._sink.open(
                    int(data["width"]), int(data["height"]), data.get("fps"), data["audio_stream"]
                )
        elif notice.kind == "connected":
            gap = Gap(
                gap_s=data.get("gap_s"),
                last_timestamp_ms=round_ms(data.get("last_timestamp_ms")),
                connection=data.get("connection"),
            )
            self._stats.gaps.append(gap)
            yield self._ev.make(gap)
        elif notice.kind == "reconnecting":
            self._stats.reconnects += 1
            yield self._ev.make(Reconnecting(data["attempt"], data["delay_s"], data["error"]))
        elif notice.kind == "ended":
            reason = data.get("reason", "end")
            if not self._stop.is_set() or self._end_reason == "end":
                self._end_reason = str(reason)
            if reason in _END_CODES:
                msg = data.get("message") or "the stream could not be read"
                if reason == "unauthorized":
                    msg = f"the server refused the credentials ({msg})"
                self._error = ErrorInfo(_END_CODES[reason], str(msg))
                yield self._ev.make(ErrorEvent(self._error))

    def _process(self, f: DecodedFrame) -> Faces:
        """Detect (and describe) the faces of a frame and track them."""
        # track summaries count frames as decoded, not as analysed
        return self._video.process(f.rgb, f.timestamp_ms, frame_index=f.index)

    def _latency_ms(self, f: DecodedFrame) -> float:
        """Decoded -> now (counted for the summary), as the frame event gives it."""
        latency = (time.monotonic() - f.arrived) * 1000.0
        self._stats.latencies.append(latency)
        return round(latency, 1)

    def _analyse(self, f: DecodedFrame) -> Iterator[LiveEvent]:
        faces = self._process(f)
        self._stats.analysed += 1
        yield from self._track_events(f, faces)
        ref = FrameRef.of(f.index, f.timestamp_ms, f.captured_at)
        flags: list[dict[str, Any]] | None = None
        rising: list[FlagRaised] = []
        if self.rules is not None:
            h, w = f.rgb.shape[:2]
            found = self.rules.evaluate_faces(
                faces, int(w), int(h), frame=f.index, timestamp_ms=f.timestamp_ms
            )
            flags = [x.to_dict() for x in found]
            keys = [(x.rule, x.face, x.track_id) for x in found]
            for key, flag in zip(keys, flags, strict=True):
                if key not in self._active_flags:  # a rule starts to fire: a flag event
                    self._stats.flags += 1
                    rising.append(FlagRaised(ref, flag))
            self._active_flags = set(keys)
        include_mesh = "mesh" in self.analyzer_options.features
        records = faces.to_records(include_mesh=include_mesh)
        yield self._ev.make(AnalysedFrame(ref, records, flags, self._latency_ms(f)))
        for flag_event in rising:
            yield self._ev.make(flag_event)

    def _redact(self, f: DecodedFrame, *, detect: bool) -> Iterator[LiveEvent]:
        from mien.redact.draw import redact_regions
        from mien.redact.suspect import NOT_SEARCHED, cover_whole_frame, whole_frame_box

        assert self._sink is not None and self._tracks is not None and self.redact is not None
        ts = f.timestamp_ms
        regions: list[Region] = []
        suspect = list(f.damage)
        detected = False
        if detect:
            self._last_detect_ms = ts
            try:
                faces = self._process(f)
            except Exception as exc:  # the detector failed on this frame: it is not searched
                self._stats.detector_failures += 1
                if self._stats.detector_failures == 1:
                    log.warning("face detection failed (frames covered as suspect): %s", exc)
                suspect.append(NOT_SEARCHED)
            else:
                detected = True
                self._last_searched_ms = ts
                ids = _track_ids(faces)
                self._stats.analysed += 1
                yield from self._track_events(f, faces)
                regions += [
                    Region.of(faces.boxes[i], faces.scores[i], "detected", int(ids[i]))
                    for i in range(len(ids))
                ]
                regions += [Region.of(b, s, "tracked", t) for t, b, s in self._tracks.missing(ts)]
        if not detected:
            self._stats.predicted += 1
            regions += [Region.of(b, s, "tracked", t) for t, b, s in self._tracks.predicted(ts)]
            unsearched_ms = ts - self._last_searched_ms
            if NOT_SEARCHED not in suspect and unsearched_ms > self.options.detect_every_ms:
                # covered only by prediction for longer than detect_every_ms allows
                suspect.append(NOT_SEARCHED)
        # the last known area of every recent face, besides where it is predicted to be (faces
        # detected in this very frame need nothing more)
        have = {r.track_id for r in regions if r.source == "detected"}
        held = [Region.of(b, s, "held", t) for t, b, s in self._tracks.held(ts) if t not in have]
        if held:
            self._stats.held += 1
        regions += held
        reasons = tuple(dict.fromkeys(suspect))
        action = self._suspect_action(f, reasons, known=bool(regions))
        if action == "covered_regions":
            regions += _grown(regions)
        if action == "covered_frame":
            h, w = f.rgb.shape[:2]
            regions.append(Region.of(whole_frame_box(w, h)[0], None, "whole_frame", None))
            covered = cover_whole_frame(f.rgb, self.redact)
        else:
            boxes = np.array([r.box for r in regions], np.float32).reshape(-1, 4)
            covered = redact_regions(f.rgb, boxes, self.redact)
        self._sink.write_frame(covered, ts)
        ref = FrameRef.of(f.index, ts, f.captured_at)
        latency = self._latency_ms(f)
        yield self._ev.make(RedactedFrame(ref, detected, tuple(regions), reasons, action, latency))

    def _suspect_action(
        self, f: DecodedFrame, reasons: tuple[str, ...], *, known: bool
    ) -> SuspectAction | None:
        """What ``on_suspect`` does with a frame (None: not suspect; ``known``: some region of
        a face is known in it); counts it; raises :class:`SuspectFramesError` for "fail"."""
        if not reasons:
            return None
        self._stats.count_suspect(reasons)
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
        ids = _track_ids(faces)
        started, ended = self._tracks.observe(ids, faces.boxes, faces.scores, f.timestamp_ms)
        for tid in started:
            i = int(np.nonzero(ids == tid)[0][0])
            self._stats.tracks += 1
            yield self._ev.make(
                TrackStarted(
                    track_id=tid,
                    frame_index=f.index,
                    timestamp_ms=round(f.timestamp_ms, 1),
                    box=round_box(faces.boxes[i]),
                    score=round(float(faces.scores[i]), 4),
                )
            )
        for tid in ended:
            yield self._track_ended(tid)

    def _track_ended(self, tid: int) -> LiveEvent:
        """``track_ended`` with the video-mode summary of the track (then forgotten)."""
        track = self._video.pop_summary(tid, self.source.display)
        if track is None:
            return self._ev.make(TrackEnded(tid))
        summary = track.to_dict()
        summary.pop("kind", None)
        summary.pop("source", None)
        return self._ev.make(TrackEnded(tid, summary))

    def _dropped(self, *, force: bool) -> Iterator[LiveEvent]:
        event = self._stats.dropped(self._buffer.dropped, time.monotonic(), force=force)
        if event is not None:
            yield self._ev.make(event)

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
                self._error = ErrorInfo(exc.code, exc.message)
                yield self._ev.make(ErrorEvent(self._error))
        summary = self._summary()
        self.summary = summary.to_dict()
        yield self._ev.make(summary)

    def _summary(self) -> SessionSummary:
        dec, stats, overflow = self._decoder, self._stats, self._buffer.dropped
        redaction = None
        if self.redact is not None:
            redaction = RedactionCounts(
                output=self.output,
                frames_written=self._sink.frames_written if self._sink else 0,
                frames_predicted=stats.predicted,
                frames_held=stats.held,
                detector_failures=stats.detector_failures,
                suspect_frames=stats.suspect_frames,
                suspect_reasons=dict(stats.suspect_reasons),
            )
        return SessionSummary(
            source=self.source.display,
            mode=self.mode,
            reason=self._end_reason,
            started_at=iso_time(self._started_wall),
            duration_s=round(time.monotonic() - self._started, 3),
            frames_decoded=dec.frames_decoded if dec is not None else 0,
            frames_analysed=stats.analysed,
            frames_dropped=overflow + stats.skipped,
            queue_overflow=overflow,
            frames_skipped=stats.skipped,
            decode_errors=dec.decode_errors if dec is not None else 0,
            reconnects=stats.reconnects,
            gaps=tuple(stats.gaps),
            tracks=stats.tracks,
            flags=stats.flags,
            latency_ms=stats.latency(),
            redaction=redaction,
            error=self._error,
        )

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


def _default_analyzer_options(redacting: bool) -> AnalyzerOptions:
    if redacting:
        from mien.redact.options import REDACT_THRESHOLD

        return AnalyzerOptions(features=("detection",), threshold=REDACT_THRESHOLD)
    return AnalyzerOptions()


def _load_rules(rules: RuleSet | str | os.PathLike[str] | None) -> RuleSet | None:
    """``rules`` as a :class:`RuleSet` (read by :func:`mien.rules.load_rules` unless one)."""
    if rules is None:
        return None
    from mien.rules import load_rules

    return load_rules(rules)


def _track_ids(faces: Faces) -> npt.NDArray[np.int64]:
    return faces.track_ids if faces.track_ids is not None else np.zeros(0, np.int64)


def _grown(regions: list[Region]) -> list[Region]:
    """The regions grown :data:`mien.redact.suspect.SUSPECT_GROWTH` times (``"suspect"``)."""
    from mien.redact.suspect import grow_boxes

    if not regions:
        return []
    grown = grow_boxes([r.box for r in regions])
    pairs = zip(grown, regions, strict=True)
    return [Region.of(b, r.score, "suspect", r.track_id) for b, r in pairs]
