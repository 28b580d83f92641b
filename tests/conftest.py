"""Shared fixtures (the labelled photos in ../shared/data, one analyzer per session) and the
markers every test gets from what it uses (data, postgres, browser, stream, slow)."""

from __future__ import annotations

import csv
import inspect
from collections import defaultdict
from pathlib import Path
from types import CodeType, FunctionType
from typing import Any

import numpy as np
import pytest

import mien

REPO = Path(__file__).resolve().parents[1]
SHARED_DATA = REPO.parent / "shared" / "data"
SAMPLE = REPO / "src" / "mien" / "samples" / "astronaut.jpg"


def shared(*parts: str) -> Path:
    """A path under ../shared/data; skips the test with a clear message when it is absent."""
    path = SHARED_DATA.joinpath(*parts)
    if not path.exists():
        pytest.skip(f"needs the labelled data at {path} (../shared/data); it is not present here")
    return path


@pytest.fixture(scope="session")
def analyzer() -> mien.FaceAnalyzer:
    return mien.FaceAnalyzer(features="detection,landmarks,head_pose,quality,mesh", num_threads=2)


@pytest.fixture(scope="session")
def sample_face_ctx() -> Any:
    """The bundled sample's one face as an attribute analyzer sees it (mesh and head pose):
    a :class:`mien.analyzers.attributes.base.FaceContext`."""
    from mien.analyzers.attributes import base
    from mien.media.image import load_image

    rgb = load_image(SAMPLE).rgb
    faces = mien.FaceAnalyzer(features="landmarks,head_pose,mesh").analyze_array(rgb)
    assert len(faces) == 1 and faces.mesh is not None and faces.head_pose is not None
    assert faces.landmarks is not None
    return base.FaceContext(rgb, faces.boxes, faces.landmarks, faces.mesh, faces.head_pose)


@pytest.fixture(scope="session")
def dlib_boxes() -> dict[str, np.ndarray]:
    """Hand-drawn ground-truth boxes of the dlib example photos, by file name."""
    rows = defaultdict(list)
    with open(shared("dlib_examples_faces", "boxes.csv"), newline="") as fh:
        for r in csv.DictReader(fh):
            rows[r["image"]].append([float(r[k]) for k in ("xmin", "ymin", "xmax", "ymax")])
    return {k: np.array(v, np.float32) for k, v in rows.items()}


# -- markers --------------------------------------------------------------------------------
# `pytest -m "not slow and not postgres ..."` chooses tests before any of them runs, so a
# marker cannot wait for `shared()` to be called: each test is marked from what its code uses,
# read from the bytecode of the test, of the fixtures it requests and of the tests/ helpers
# (functions and classes) they call. A new test that reads ../shared/data, drives Chromium or
# starts a stream server is marked without anyone remembering to; `slow` alone is a list,
# because only a clock can tell it (see SLOW below).

#: Helpers of tests/live_streams.py that start an RTMP, RTSP or HLS server (or publish to one).
STREAM_SERVERS = frozenset(
    {"HLSServer", "RTSPServer", "ffmpeg_rtmp_server", "publish_rtmp", "receive_rtmp"}
)

#: ``slow``: the modules whose tests take 15 s or more together, and elsewhere the tests that take
#: more than ~1.5 s, on a quiet 2-core machine (measured: CPU seconds per test of a whole run).
#: What is left runs in about a minute (README, "Development"). Module -> "*" or test functions.
SLOW: dict[str, str | frozenset[str]] = {
    **dict.fromkeys(
        (
            "test_analyzer",
            "test_attributes_cover",
            "test_attributes_face",
            "test_batch",
            "test_cli",
            "test_fuzz_smoke",
            "test_live",
            "test_output_rule",
            "test_redact_failclosed",
            "test_redact_video",
            "test_review_page",
            "test_rules_photos",
            "test_service_cost",
            "test_service_restart",
            "test_service_schemathesis",
            "test_video",
        ),
        "*",
    ),
    "test_batch_ray": frozenset(
        {"test_ray_engine_gives_the_local_engine_records_and_resumes_its_job"}
    ),
    "test_bounded_reads": frozenset(
        {
            "test_analyze_fifo_and_device_inputs_are_errors_not_hangs",
            "test_analyze_folder_reports_its_fifos",
            "test_redact_folder_with_unknown_codec_goes_on",
        }
    ),
    "test_heads": frozenset(
        {
            "test_blur_gate_reuses_the_quality_sharpness",
            "test_eyewear_networks_run_once_per_face_each",
        }
    ),
    "test_litert_stderr": frozenset(
        {
            "test_an_error_still_reaches_stderr",
            "test_analyze_with_landmarks_and_mesh_prints_nothing_on_stderr_with_q",
        }
    ),
    "test_redact_image": frozenset({"test_every_labelled_face_is_covered"}),
    "test_review": frozenset({"test_profile_flags_on_the_analyze_route"}),
    "test_schemas": frozenset(
        {"test_analyze_images_and_videos_validate", "test_check_lines_validate"}
    ),
    "test_service_cli": frozenset({"test_keys_create_list_revoke"}),
    "test_service_csrf": frozenset({"test_the_configured_lifetime_ends_the_session"}),
    "test_service_jobs": frozenset(
        {
            "test_a_crashed_worker_is_replaced_and_its_job_resumed",
            "test_retention_purges_media_but_keeps_numbers",
        }
    ),
    "test_service_ssrf": frozenset(
        {"test_hls_may_not_lead_elsewhere", "test_serve_option_and_config"}
    ),
    "test_service_store": frozenset(
        {
            "test_parallel_job_creations_on_a_real_server",
            "test_serve_refuses_a_corrupted_database_with_one_line",
            "test_sigkill_of_the_server_leaves_no_worker",
            "test_synchronous_routes_never_spool_uploads_to_disk",
        }
    ),
    "test_service_stream": frozenset({"test_query_parameters_are_checked_too"}),
}


def _ours(obj: object) -> bool:
    """Whether ``obj`` is code of the test tree (tests/, bench/), which the walk follows."""
    code = getattr(obj, "__code__", None)
    path = Path(code.co_filename) if code is not None else None
    return path is not None and any(path.is_relative_to(REPO / d) for d in ("tests", "bench"))


def _names_used(funcs: list[Any]) -> set[str]:
    """The global and attribute names that ``funcs`` use, following every test-tree function and
    class method they name (nested functions and comprehensions included)."""
    names: set[str] = set()
    seen: set[CodeType] = set()
    todo = [inspect.unwrap(f) for f in funcs if _ours(inspect.unwrap(f))]
    while todo:
        func = todo.pop()
        codes = [func.__code__]
        while codes:
            code = codes.pop()
            if code in seen:
                continue
            seen.add(code)
            names.update(code.co_names)
            codes.extend(c for c in code.co_consts if isinstance(c, CodeType))
            for name in code.co_names:
                obj = func.__globals__.get(name)
                members = list(vars(obj).values()) if isinstance(obj, type) else [obj]
                todo.extend(m for m in members if isinstance(m, FunctionType) and _ours(m))
    return names


def _markers(item: pytest.Function) -> set[str]:
    info = getattr(item, "_fixtureinfo", None)
    fixtures = [d.func for defs in getattr(info, "name2fixturedefs", {}).values() for d in defs]
    names = _names_used([item.function, *fixtures])
    marks = set()
    if "SHARED_DATA" in names:  # shared() or the folder itself
        marks.add("data")
    if any(n.startswith("playwright") for n in names):
        marks.add("browser")
    if names & STREAM_SERVERS:
        marks.add("stream")
    spec = getattr(item, "callspec", None)
    values = [
        *inspect.unwrap(item.function).__code__.co_consts,
        *(spec.params.values() if spec else ()),
    ]
    if any(isinstance(v, str) and v == "postgresql" for v in values):  # the backend parameter
        marks.add("postgres")
    slow = SLOW.get(item.module.__name__.rpartition(".")[2] if item.module else "", ())
    gone = sorted(name for name in slow if slow != "*" and not hasattr(item.module, name))
    if gone:  # a renamed slow test would silently join the quick loop
        raise pytest.UsageError(
            f"tests/conftest.py SLOW names tests {item.path.name} lacks: {gone}"
        )
    if slow == "*" or item.originalname in slow:
        marks.add("slow")
    return marks


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Mark every test with what it needs (data, postgres, browser, stream) and ``slow``."""
    for item in items:
        if isinstance(item, pytest.Function):
            for name in sorted(_markers(item)):
                item.add_marker(name)
