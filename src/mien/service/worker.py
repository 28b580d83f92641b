"""Job worker processes: claim a job from the store, analyse its items, record the results.

Run as ``python -m mien.service.worker NAME PARENT_PID`` (settings as JSON in
``$MIEN_SERVICE_CONFIG``) by :mod:`mien.service.supervisor`. A worker
sends a heartbeat while it holds a job; if it dies (crash, kill, server restart) its job is taken
over by the next worker once the lease runs out and resumes at the first item without a result
(partial results of that item are dropped first). After ``max_attempts`` interrupted runs the job
is marked failed. A worker exits when its parent (the server) is gone.
"""

from __future__ import annotations

import json
import logging
import os
import signal
import sys
import threading
import time
from pathlib import Path
from typing import Any

from mien.errors import MienError
from mien.service import streams, webhooks
from mien.service.analysis import (
    AnalysisParams,
    AnalyzerCache,
    evaluate,
    flag_record,
    image_record,
)
from mien.service.config import ServiceConfig
from mien.service.media import delete_job_media, job_dir
from mien.service.rows import JobRow
from mien.service.segments import (
    REVIEW_BY_RULES,
    Segmenter,
    frame_observations,
    segment_row,
)
from mien.service.store import Claim, Store
from mien.video import FrameResult, VideoAnalyzer, VideoOptions, VideoResult

log = logging.getLogger("mien.service.worker")

_BATCH = 50
CONFIG_ENV = "MIEN_SERVICE_CONFIG"


class Worker:
    def __init__(self, config: ServiceConfig, store: Store, name: str) -> None:
        self.config = config
        self.store = store
        self.name = name
        self.stop = threading.Event()
        self.cache = AnalyzerCache(
            num_threads=config.num_threads, max_pixels=config.max_pixels, device=config.device
        )
        self._fault: str | None = None

    def run_forever(self, parent_pid: int | None = None) -> None:
        while not self.stop.is_set():
            if parent_pid is not None and os.getppid() != parent_pid:
                log.info("%s: the server is gone; exiting", self.name)
                return
            fault = self.store.fault()
            if fault:  # the database file is gone: take no work, say why (once)
                if fault != self._fault:
                    log.error("%s: %s", self.name, fault)
                self._fault = fault
                self.stop.wait(self.config.poll_s)
                continue
            claim = self.store.claim(self.name, self.config.job_lease_s)
            if claim is None:
                self.stop.wait(self.config.poll_s)
                continue
            self.run_job(claim)

    def run_job(self, claim: Claim) -> None:
        job = self.store.get_job(claim.job_id)
        if job is None:
            return
        if claim.attempts > self.config.max_attempts:
            if self.store.fail_exhausted(claim.job_id, self.name, self.config.max_attempts):
                webhooks.job_finished(self.store, claim.job_id)
            return
        lost = threading.Event()
        beat = threading.Thread(
            target=self._heartbeat, args=(claim.job_id, lost), daemon=True, name="heartbeat"
        )
        beat.start()
        try:
            outcome = self._run_items(job, lost)
            if outcome == "done":
                error = self._stream_error(claim.job_id) if job.kind == "stream" else None
                status = "failed" if error else "succeeded"
                if self.store.finish_job(claim.job_id, self.name, status, error):
                    webhooks.job_finished(self.store, claim.job_id)
                if int(job.retention_s) == 0:
                    delete_job_media(self.config.media_dir, claim.job_id)
                    self.store.mark_purged(claim.job_id)
            elif outcome == "stopped":
                self.store.release(claim.job_id, self.name)
        except MienError as exc:
            self._fail(claim.job_id, (exc.code, exc.message))
        except Exception as exc:  # never lose a job: record why it failed
            log.exception("%s: job %s failed", self.name, claim.job_id)
            self._fail(claim.job_id, ("InternalError", f"{type(exc).__name__}: {exc}"))
        finally:
            lost.set()
            beat.join(timeout=5)

    def _fail(self, job_id: str, error: tuple[str, str]) -> None:
        if self.store.finish_job(job_id, self.name, "failed", error):
            webhooks.job_finished(self.store, job_id)

    def _heartbeat(self, job_id: str, lost: threading.Event) -> None:
        while not lost.wait(self.config.heartbeat_s):
            try:
                if self.store.fault() or not self.store.heartbeat(job_id, self.name):
                    lost.set()  # cancelled or taken over
            except Exception:  # a transient database error: try again next beat
                log.warning("%s: heartbeat failed", self.name, exc_info=True)

    def _run_items(self, job: JobRow, lost: threading.Event) -> str:
        job_id = str(job.id)
        params = AnalysisParams.from_json(json.loads(job.params))
        ruleset = self.cache.ruleset(params.profile)
        analyzer = self.cache.analyzer(params)
        folder = job_dir(self.config.media_dir, job_id)
        keep = int(job.retention_s) > 0
        for item in self.store.job_items(job_id):
            if item.status != "pending":
                continue
            if self.stop.is_set():
                return "stopped"
            if lost.is_set() or not self.store.is_running_for(job_id, self.name):
                return "lost"
            idx = int(item.idx)
            self.store.reset_item(job_id, idx)
            error: tuple[str, str] | None = None
            if job.kind == "stream":
                error = self._stream(job, idx, params, lost)
                if self.stop.is_set():
                    return "stopped"  # shutdown: the job is taken up again by the next worker
            elif item.media_file is None:
                error = ("MediaPurged", f"{item.name}: the upload was deleted before analysis")
            else:
                path = folder / str(item.media_file)
                if job.kind == "video":
                    error = self._video(job_id, idx, path, item.name, params, lost)
                else:
                    result = analyzer.analyze(path, name=str(item.name), on_error="record")
                    flags = evaluate(ruleset, result)
                    row = {
                        "kind": "image",
                        "data": image_record(result, params, flags),
                        "flags": flags,
                    }
                    self._add_numbered(job_id, idx, [row], 0)
                    if result.error is not None:
                        error = (result.error.code, result.error.message)
                if not keep:
                    path.unlink(missing_ok=True)
            if not self.store.finish_item(
                job_id, idx, self.name, error=error, media_deleted=not keep
            ):
                return "lost"
        return "done"

    def _stream(
        self, job: JobRow, idx: int, params: AnalysisParams, lost: threading.Event
    ) -> tuple[str, str] | None:
        """A stream job's one item: the live session, its events stored as results."""
        job_id = str(job.id)
        path = job_dir(self.config.media_dir, job_id) / streams.URL_FILE
        try:
            url = path.read_text(encoding="utf-8")
        except OSError:
            return ("MediaPurged", "the stream address was deleted before the job started")
        checked = [time.monotonic(), False]

        def should_stop() -> bool:
            if lost.is_set() or self.stop.is_set():
                return True
            if time.monotonic() - float(checked[0]) >= 0.5:  # cancelled (DELETE)?
                checked[0] = time.monotonic()
                checked[1] = not self.store.is_running_for(job_id, self.name)
            return bool(checked[1])

        try:
            return streams.run_stream(
                self.store,
                job_id,
                idx,
                url,
                params,
                dict(json.loads(job.params).get("stream") or {}),
                self.config.num_threads,
                self.cache.ruleset(params.profile),
                should_stop,
                self.config.outbound_policy(),
                device=self.config.device,
            )
        finally:
            if int(job.retention_s) == 0:
                path.unlink(missing_ok=True)

    def _stream_error(self, job_id: str) -> tuple[str, str] | None:
        for item in self.store.job_items(job_id):
            if item.error_code:
                return (str(item.error_code), str(item.error_message or ""))
        return None

    def _video(
        self,
        job_id: str,
        idx: int,
        path: Path,
        name: str,
        params: AnalysisParams,
        lost: threading.Event,
    ) -> tuple[str, str] | None:
        video_opts = VideoOptions(sample_fps=params.sample_fps)
        va = VideoAnalyzer(analyzer=self.cache.analyzer(params), video=video_opts)
        ruleset = self.cache.ruleset(params.profile)
        include_mesh = "mesh" in params.features
        rows: list[dict[str, Any]] = []
        error: tuple[str, str] | None = None
        seq = 0
        segmenter = Segmenter(by_rules=REVIEW_BY_RULES)
        closing: dict[str, Any] | None = None
        for rec in va.analyze_video(path, on_error="record"):
            if lost.is_set() or self.stop.is_set():
                return ("JobInterrupted", f"{name}: interrupted")
            frame = rec if isinstance(rec, FrameResult) else None
            data = rec.to_dict() if frame is None else frame.to_dict(include_mesh=include_mesh)
            data = _hide_path(data, path, name)  # never the upload's path on this server
            data["source"] = name
            flags: list[dict[str, Any]] = []
            if frame is not None and ruleset is not None:
                faces = ruleset.evaluate_faces(frame.faces, frame.width, frame.height)
                flags = [flag_record(f) for f in faces]
            if params.profile and frame is not None:
                data["profile"] = params.profile
                data["flags"] = flags
            if isinstance(rec, VideoResult) and rec.error is not None:
                error = (rec.error.code, _hide_path(rec.error.message, path, name))
            row: dict[str, Any] = {"kind": str(data.get("kind", "frame")), "data": data}
            if frame is not None:  # the review items are the segments, not the frames
                t_s = float(data["timestamp_ms"]) / 1000.0
                closed = segmenter.add(frame_observations(data, flags), t_s)
                rows += [segment_row(s, name, params.profile) for s in closed]
                row.update(flags=flags, flagged=False)
            if row["kind"] == "video":
                closing = row  # the closing record stays the last row
            else:
                rows.append(row)
            if len(rows) >= _BATCH:
                seq = self._add_numbered(job_id, idx, rows, seq)
                rows = []
        rows += [segment_row(s, name, params.profile) for s in segmenter.close()]
        self._add_numbered(job_id, idx, rows + ([closing] if closing else []), seq)
        return error

    def _add_numbered(self, job_id: str, idx: int, rows: list[dict[str, Any]], seq: int) -> int:
        """Store ``rows`` numbered from ``seq`` on; the next free number."""
        for n, row in enumerate(rows):
            row["seq"] = seq + n
        self.store.add_results(job_id, idx, rows)
        webhooks.items_flagged(self.store, job_id, idx, rows)
        return seq + len(rows)


#: After the server is gone, how long a worker may take to hand its job back before it exits.
PARENT_GONE_GRACE_S = 5.0


def _wait_for_exit(pid: int, stop: threading.Event) -> bool:
    """Block until process ``pid`` has exited (True) or ``stop`` is set (False).

    Uses a pidfd (Linux 5.3+), which becomes readable when the process exits; elsewhere it
    polls the parent's pid twice a second.
    """
    import select

    try:
        fd = os.pidfd_open(pid)
    except (AttributeError, OSError):
        fd = -1
    if fd < 0:
        while not stop.wait(0.5):
            if os.getppid() != pid:
                return True
        return False
    try:
        poller = select.poll()
        poller.register(fd, select.POLLIN)
        while not stop.is_set():
            if poller.poll(500):
                return True
        return False
    finally:
        os.close(fd)


def watch_parent(worker: Worker, parent_pid: int) -> threading.Thread:
    """Stop ``worker`` when the server that started it dies, even by SIGKILL, and even in the
    middle of a job: the job is handed back if that takes less than
    :data:`PARENT_GONE_GRACE_S`, else the process exits anyway (the job's lease then runs out
    and the next server resumes it). No worker outlives its server."""

    def run() -> None:
        if os.getppid() != parent_pid or _wait_for_exit(parent_pid, worker.stop):
            log.info("%s: the server (pid %d) is gone; stopping", worker.name, parent_pid)
            worker.stop.set()
            time.sleep(PARENT_GONE_GRACE_S)
            log.warning("%s: still busy after the server went away; exiting now", worker.name)
            os._exit(1)

    thread = threading.Thread(target=run, daemon=True, name="parent-watch")
    thread.start()
    return thread


def _hide_path(value: Any, path: Path, name: str) -> Any:
    """``value`` (a record, a list, a string) with the upload's path on this server, and its
    folder, replaced by the name the client gave the file."""
    if isinstance(value, str):
        return value.replace(str(path), name).replace(str(path.parent), "<upload>")
    if isinstance(value, dict):
        return {k: _hide_path(v, path, name) for k, v in value.items()}
    if isinstance(value, list):
        return [_hide_path(v, path, name) for v in value]
    return value


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    logging.basicConfig(level=logging.INFO, format="mien worker: %(message)s", stream=sys.stderr)
    raw = json.loads(os.environ.pop(CONFIG_ENV, "{}"))
    raw["data_dir"] = Path(raw.get("data_dir") or ServiceConfig().data_dir)
    config = ServiceConfig(**raw)
    name = args[0] if args else "w"
    parent = int(args[1]) if len(args) > 1 else None
    store = Store.open(config.database_url, migrate_schema=False)
    worker = Worker(config, store, f"{name}-{os.getpid()}")

    def _stop(_sig: int, _frame: Any) -> None:
        worker.stop.set()

    signal.signal(signal.SIGTERM, _stop)
    signal.signal(signal.SIGINT, _stop)
    if parent is not None:
        watch_parent(worker, parent)
    try:
        worker.run_forever(parent_pid=parent)
    finally:
        store.close()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
