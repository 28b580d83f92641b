"""The JSON Schemas of every record mien writes, checked against what mien really writes.

Real runs on real media: ``mien analyze`` on a photo and videos (one whole, one damaged part-way,
one that is not a video), ``mien analyze --stream`` with a rules profile, a live redaction and a
live source that cannot be reached, and ``mien check --analysis``. Every line is validated
(Draft 2020-12, the schemas in src/mien/schema referencing each other by ``$id``); records made
invalid on purpose (a missing key, a refused attribute name...) must fail.
"""

from __future__ import annotations

import copy
import json
import socket
import subprocess
import sys
from collections.abc import Iterator
from functools import cache
from pathlib import Path
from typing import Any

import av
import pytest
from jsonschema.protocols import Validator
from jsonschema.validators import validator_for
from referencing import Registry, Resource

from mien.analyzers.attributes import ATTRIBUTE_NAMES
from mien.errors import RefusedAttributeError
from mien.features import parse_features
from tests.conftest import REPO, SAMPLE, shared

SCHEMA_DIR = REPO / "src" / "mien" / "schema"
FILES = ("output", "video", "live_event", "check", "analyze")
ATTRS = ",".join(ATTRIBUTE_NAMES)
REFUSED = ("age", "gender", "emotion", "ethnicity", "identity", "apparent_age")


# -- schemas -----------------------------------------------------------------------------------


@cache
def schemas() -> dict[str, dict[str, Any]]:
    return {n: json.loads((SCHEMA_DIR / f"{n}.schema.json").read_text()) for n in FILES}


@cache
def validator(name: str) -> Validator:
    """The validator of ``<name>.schema.json``, resolving ``$ref``s to the other schema files."""
    registry: Registry[Any] = Registry().with_resources(
        (s["$id"], Resource.from_contents(s)) for s in schemas().values()
    )
    schema = schemas()[name]
    cls = validator_for(schema)
    return cls(schema, registry=registry)


def valid(name: str, record: dict[str, Any]) -> bool:
    return bool(validator(name).is_valid(record))


def check_all(name: str, records: list[dict[str, Any]]) -> None:
    for rec in records:
        errors = sorted(validator(name).iter_errors(rec), key=lambda e: list(e.path))
        assert not errors, (name, rec, [f"{list(e.path)}: {e.message[:300]}" for e in errors])
        assert valid("analyze", rec) or name == "check"


# -- real runs ---------------------------------------------------------------------------------


def mien(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "mien", *args], capture_output=True, text=True, timeout=300
    )


def json_lines(text: str) -> list[dict[str, Any]]:
    return [json.loads(line) for line in text.splitlines() if line.strip()]


def clip(name: str) -> Path:
    return shared("pyfeat_media", name)


def damaged_copy(source: Path, target: Path) -> Path:
    """``source`` remuxed with its index first (faststart), then cut to 60%: frames, then damage."""
    with (
        av.open(str(source)) as src,
        av.open(str(target), "w", options={"movflags": "faststart"}) as dst,
    ):
        vin = src.streams.video[0]
        vout = dst.add_stream_from_template(vin)
        for packet in src.demux(vin):
            if packet.dts is None:
                continue
            packet.stream = vout
            dst.mux(packet)
    data = target.read_bytes()
    target.write_bytes(data[: len(data) * 6 // 10])
    return target


@pytest.fixture(scope="module")
def analyze_lines(tmp_path_factory: pytest.TempPathFactory) -> list[dict[str, Any]]:
    """One ``mien analyze`` run over a photo, a whole video, a damaged one and a fake one."""
    tmp = tmp_path_factory.mktemp("schemas")
    damaged = damaged_copy(clip("single_face.mp4"), tmp / "damaged.mp4")
    fake = tmp / "fake.mp4"
    fake.write_text("not a video\n")
    proc = mien(
        "analyze", str(SAMPLE), str(clip("single_face.mp4")), str(damaged), str(fake),
        "--every-n", "10", "--features", f"detection,landmarks,head_pose,quality,mesh,{ATTRS}",
        "--threads", "2", "-q",
    )  # fmt: skip
    assert proc.returncode == 1, proc.stderr  # the damaged and the fake video fail
    return json_lines(proc.stdout)


@pytest.fixture(scope="module")
def live_lines() -> list[dict[str, Any]]:
    """``mien analyze --stream`` on a recording (as fast as it decodes), with a rules profile."""
    proc = mien(
        "analyze", "--stream", str(clip("single_face.mp4")), "--rules", "publish-safe",
        "--features", f"detection,head_pose,quality,{ATTRS}", "--threads", "2", "-q",
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    return json_lines(proc.stdout)


def events(session_events: Iterator[Any]) -> list[dict[str, Any]]:
    out = []
    for ev in session_events:
        d = ev.to_dict()
        json.dumps(d, allow_nan=False)
        out.append(d)
    return out


@pytest.fixture(scope="module")
def redact_events(tmp_path_factory: pytest.TempPathFactory) -> list[dict[str, Any]]:
    """A live redaction of a recording to a file, through the library (``mien.live``)."""
    from mien.live import LiveOptions, stream_events
    from mien.options import AnalyzerOptions
    from mien.redact import RedactOptions

    out = tmp_path_factory.mktemp("redact") / "covered.mp4"
    return events(
        stream_events(
            str(clip("face_noface.mov")),
            analyzer_options=AnalyzerOptions(features=("detection",), num_threads=2),
            options=LiveOptions(max_frames=60, audio=False),
            redact=RedactOptions(method="fill"),
            output=str(out),
        )
    )


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture(scope="module")
def unreachable_events() -> list[dict[str, Any]]:
    """An RTSP camera nobody answers for: one retry, then the error and the summary."""
    from mien.live import LiveOptions, ReconnectPolicy, stream_events
    from mien.options import AnalyzerOptions

    retry = ReconnectPolicy(max_retries=1, initial_delay_s=0.0, max_delay_s=0.5)
    return events(
        stream_events(
            f"rtsp://viewer:s3cret@127.0.0.1:{closed_port()}/cam",
            analyzer_options=AnalyzerOptions(features=("detection",), num_threads=2),
            options=LiveOptions(reconnect=retry),
        )
    )


@pytest.fixture(scope="module")
def check_lines(tmp_path_factory: pytest.TempPathFactory) -> list[dict[str, Any]]:
    broken = tmp_path_factory.mktemp("check") / "broken.jpg"
    broken.write_bytes(SAMPLE.read_bytes()[:2000])
    proc = mien(
        "check", "--profile", "id-photo", "--analysis", str(SAMPLE),
        str(clip("multi_face.jpg")), str(broken), "--threads", "2", "-q",
    )  # fmt: skip
    assert proc.returncode == 1, proc.stderr  # multi_face and broken are flagged
    return json_lines(proc.stdout)


# -- every real line validates -----------------------------------------------------------------


def test_schemas_are_valid_draft_2020_12() -> None:
    for name, schema in schemas().items():
        assert schema["$schema"] == "https://json-schema.org/draft/2020-12/schema"
        assert schema["$id"] == f"https://mien.invalid/schema/{name}/v1"
        validator_for(schema).check_schema(schema)


def test_analyze_images_and_videos_validate(analyze_lines: list[dict[str, Any]]) -> None:
    image = [r for r in analyze_lines if "kind" not in r]
    video = [r for r in analyze_lines if "kind" in r]
    check_all("output", image)
    check_all("video", video)
    assert len(image) == 1 and image[0]["faces"] and "mesh" in image[0]["faces"][0]
    closing = {r["source"]: r for r in video if r["kind"] == "video"}
    assert len(closing) == 3
    whole, damaged, fake = (
        next(r for s, r in closing.items() if s.endswith(n))
        for n in ("single_face.mp4", "damaged.mp4", "fake.mp4")
    )
    assert "error" not in whole and whole["frames_analysed"] == 8 and whole["tracks"] == 1
    assert damaged["error"]["code"] == "InvalidVideo" and damaged["frames_analysed"] >= 1
    assert fake["error"]["code"] == "InvalidVideo" and fake["frames_decoded"] == 0
    frames = [r for r in video if r["kind"] == "frame"]
    tracks = [r for r in video if r["kind"] == "track"]
    assert len(frames) >= 9 and len(tracks) >= 2
    assert set(tracks[0]["attributes"]) == set(ATTRIBUTE_NAMES)
    assert set(frames[0]["faces"][0]["attributes"]) == set(ATTRIBUTE_NAMES)
    assert "head_pose" in tracks[0] and "mesh" in frames[0]["faces"][0]


def test_live_analyze_events_validate(live_lines: list[dict[str, Any]]) -> None:
    check_all("live_event", live_lines)
    types = {e["type"] for e in live_lines}
    assert {"stream_started", "frame", "track_started", "track_ended", "flag", "summary"} <= types
    assert live_lines[-1]["type"] == "summary" and live_lines[-1]["mode"] == "analyze"
    frame = next(e for e in live_lines if e["type"] == "frame" and e["faces"])
    assert "flags" in frame and set(frame["faces"][0]["attributes"]) == set(ATTRIBUTE_NAMES)
    ended = next(e for e in live_lines if e["type"] == "track_ended")
    assert "best_box" in ended and "head_pose" in ended


def test_live_redact_events_validate(redact_events: list[dict[str, Any]]) -> None:
    check_all("live_event", redact_events)
    frames = [e for e in redact_events if e["type"] == "frame"]
    assert frames and all("covered" in f and "faces" not in f for f in frames)
    assert any(r["source"] == "detected" for f in frames for r in f["covered"])
    summary = redact_events[-1]
    assert summary["mode"] == "redact" and summary["frames_written"] == len(frames)


def test_live_unreachable_events_validate(unreachable_events: list[dict[str, Any]]) -> None:
    check_all("live_event", unreachable_events)
    assert [e["type"] for e in unreachable_events] == ["reconnecting", "error", "summary"]
    assert unreachable_events[-1]["reason"] == "unreachable"
    assert unreachable_events[-1]["error"]["code"] == "StreamUnreachable"


def test_live_events_hide_credentials(unreachable_events: list[dict[str, Any]]) -> None:
    assert "s3cret" not in json.dumps(unreachable_events)


def test_check_lines_validate(check_lines: list[dict[str, Any]]) -> None:
    check_all("check", check_lines)
    assert [r["rules"] for r in check_lines] == ["id-photo"] * 3
    broken = check_lines[2]
    assert broken["faces"] is None and broken["error"]["code"] == "InvalidImage"
    assert [f["rule"] for f in broken["flags"]] == ["unreadable"]
    assert check_lines[0]["analysis"]["faces"] and check_lines[1]["passed"] is False


# -- what must not validate --------------------------------------------------------------------


def test_attribute_names_are_the_implemented_ones() -> None:
    enum = schemas()["output"]["$defs"]["attribute_name"]["enum"]
    assert tuple(enum) == ATTRIBUTE_NAMES
    assert set(enum) <= set(parse_features(enum))  # every one can be asked for
    for name in REFUSED:
        with pytest.raises(RefusedAttributeError):
            parse_features([name])


@pytest.mark.parametrize("name", REFUSED)
def test_refused_attribute_names_fail_everywhere(
    name: str,
    analyze_lines: list[dict[str, Any]],
    live_lines: list[dict[str, Any]],
) -> None:
    image = copy.deepcopy(next(r for r in analyze_lines if "kind" not in r))
    image["faces"][0]["attributes"][name] = {"value": 33, "confidence": 0.9}
    assert not valid("output", image) and not valid("analyze", image)

    frame = copy.deepcopy(next(r for r in analyze_lines if r.get("kind") == "frame"))
    frame["faces"][0]["attributes"][name] = {"value": True, "confidence": 0.9}
    assert not valid("video", frame)

    track = copy.deepcopy(next(r for r in analyze_lines if r.get("kind") == "track"))
    track["attributes"][name] = {"value": "x", "confidence": 0.9, "frames": 3}
    assert not valid("video", track)

    event = copy.deepcopy(next(e for e in live_lines if e["type"] == "frame" and e["faces"]))
    event["faces"][0]["attributes"][name] = {"value": True, "confidence": 0.9}
    assert not valid("live_event", event)

    ended = copy.deepcopy(next(e for e in live_lines if e["type"] == "track_ended"))
    ended["attributes"][name] = {"value": True, "confidence": 0.9, "frames": 1}
    assert not valid("live_event", ended)


def without(record: dict[str, Any], *path: str | int) -> dict[str, Any]:
    out = copy.deepcopy(record)
    node: Any = out
    for key in path[:-1]:
        node = node[key]
    del node[path[-1]]
    return out


def with_value(record: dict[str, Any], value: Any, *path: str | int) -> dict[str, Any]:
    out = copy.deepcopy(record)
    node: Any = out
    for key in path[:-1]:
        node = node[key]
    node[path[-1]] = value
    return out


def test_broken_video_records_fail(analyze_lines: list[dict[str, Any]]) -> None:
    frame = next(r for r in analyze_lines if r.get("kind") == "frame")
    track = next(r for r in analyze_lines if r.get("kind") == "track")
    video = next(r for r in analyze_lines if r.get("kind") == "video")
    for rec in (frame, track, video):
        assert valid("video", rec)
    assert not valid("video", without(frame, "timestamp_ms"))
    assert not valid("video", without(frame, "faces", 0, "track_id"))  # every face is tracked
    assert not valid("video", with_value(frame, 0, "faces", 0, "track_id"))  # ids start at 1
    assert not valid("video", with_value(frame, "clip", "kind"))
    assert not valid("video", without(track, "best_box"))
    assert not valid("video", with_value(track, 1, "extra"))  # closed record
    assert not valid("video", with_value(track, "worn", "attributes", "smile", "value"))
    assert not valid("video", with_value(video, 45, "rotation"))
    assert not valid("video", with_value(video, {"code": "Oops", "message": "x"}, "error"))
    assert not valid("output", frame)  # the image schema has no kind
    # the image record keeps validating as before, and is no video record
    image = next(r for r in analyze_lines if "kind" not in r)
    assert valid("output", image) and not valid("video", image)
    mask = ("faces", 0, "attributes", "mask", "value")
    assert not valid("output", with_value(image, "glasses", *mask))


def test_broken_live_events_fail(
    live_lines: list[dict[str, Any]], redact_events: list[dict[str, Any]]
) -> None:
    first = {e["type"]: e for e in reversed(live_lines + redact_events)}
    summary = live_lines[-1]
    frame = next(e for e in live_lines if e["type"] == "frame")
    covered = next(e for e in redact_events if e["type"] == "frame")
    assert not valid("live_event", without(frame, "seq"))
    assert not valid("live_event", with_value(frame, "12:00", "wall_time"))
    assert not valid("live_event", with_value(frame, "snapshot", "type"))
    assert not valid("live_event", with_value(frame, [], "covered"))  # analyze xor redact
    assert not valid("live_event", with_value(covered, "guessed", "covered", 0, "source"))
    assert not valid("live_event", with_value(summary, 1, "frames_written"))  # redact only
    assert not valid("live_event", with_value(summary, "crashed", "reason"))
    assert not valid("live_event", without(first["stream_started"], "kind"))
    assert not valid("live_event", without(first["track_ended"], "first_frame"))  # all or none
    assert not valid("live_event", with_value(first["flag"], "fatal", "severity"))
    assert not valid("live_event", with_value(first["dropped"], -1, "skipped"))
    assert not valid("live_event", with_value(first["track_started"], 41, "age"))  # closed events
    assert not valid("live_event", with_value(first["summary"], 1, "faces"))
    bare = ("type", "seq", "wall_time", "track_id")  # a track the analyzer did not know
    assert valid("live_event", {k: first["track_ended"][k] for k in bare})


def test_broken_check_lines_fail(check_lines: list[dict[str, Any]]) -> None:
    good, flagged, broken = check_lines
    assert not valid("check", without(good, "rules"))
    assert not valid("check", with_value(flagged, True, "passed"))  # an error flag fails it
    assert not valid("check", with_value(broken, 0, "faces"))  # unreadable: faces is null
    assert not valid("check", without(broken, "error"))
    assert not valid("check", with_value(flagged, "blocker", "flags", 0, "severity"))
    assert not valid("check", with_value(good, {"ok": True}, "flags"))
    bad = copy.deepcopy(good)
    bad["analysis"]["faces"][0]["attributes"]["age"] = {"value": 40, "confidence": 0.5}
    assert not valid("check", bad)
