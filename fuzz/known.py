"""Findings that are known and not fixed yet, so that CI reports them without failing.

Each one has a regression input in ``fuzz/corpus/<target>/`` that tests/test_fuzz_smoke.py replays
as a strict xfail (it turns into a failure, to be removed from here, once the fix lands), and a
signature (:func:`fuzz._common.signature`) that the smoke run's mutated inputs may hit without
failing. docs/fuzzing.md lists them with their owners.
"""

from __future__ import annotations

from typing import Final

#: Target -> finding signature -> what it is (and whose area the fix is in).
KNOWN: Final[dict[str, dict[str, str]]] = {
    "video": {
        "AttributeError at video.py:_info": (
            "a video stream whose codec FFmpeg does not know (codec tag 'zzzz') has no codec "
            "context: probe_video/VideoReader raise AttributeError ('NoneType' object has no "
            "attribute 'width') instead of InvalidVideoError, and `mien analyze` stops the whole "
            "batch with a traceback. Fix in src/mien/media/video.py:_info (lead / c-reads: "
            "unknown codecs)"
        ),
        "AttributeError at video.py:_codec_name": (
            "the same for an audio stream with an unknown codec (Matroska codec id 'A_ZZZ'): "
            "_codec_name's fallback reads codec_context.name of a None codec context; "
            "AttributeError instead of a VideoInfo with an unknown audio codec. Fix in "
            "src/mien/media/video.py:_codec_name (lead / c-reads)"
        ),
        "memory": (
            "a 1.3 KB Matroska file whose VP9 stream claims 5991x38532 px makes av.open (FFmpeg's "
            "find_stream_info decodes a frame) take ~0.7 s and ~390 MiB before mien's VideoLimits "
            "are checked; probe_video then refuses it (VideoTooLarge). Any video input can cost "
            "hundreds of MB this way. Fix in src/mien/media/video.py:_open / VideoReader (lead / "
            "c-reads: bounded reads): pass FFmpeg's max_pixels (limits.max_pixels) to av.open "
            "(stream_options) and to the decoder's codec_context.options"
        ),
    },
}

#: Regression inputs (path under fuzz/corpus) that still fail -> the signature they show.
XFAIL: Final[dict[str, str]] = {
    "video/unknown-codec-tag.mp4": "AttributeError at video.py:_info",
    "video/unknown-audio-codec.mkv": "AttributeError at video.py:_codec_name",
    "video/probe-bomb-vp9-5991x38532.mkv": "memory",
}
