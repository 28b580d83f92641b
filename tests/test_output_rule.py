"""mien's one output rule, through the real command line (``python -m mien``).

Every path mien writes is refused (exit 3, OutputError naming the path and why, before any work)
when it is the input (also through a hard link or a symlink), a device, a FIFO, a socket, a folder
or a symbolic link; nothing is replaced and nothing partial is left. Every output file gets
``0666 & ~umask``. A redaction and its report are committed together (both or neither).
"""

from __future__ import annotations

import os
import shutil
import socket
import stat
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest
from PIL import Image

from tests.conftest import SAMPLE
from tests.test_video import clip_head, media

#: A refusal happens before any input is read: such a run never takes long.
TIMEOUT = 120


def mien(*args: str, umask: int | None = None) -> subprocess.CompletedProcess[str]:
    preexec: Callable[[], object] | None = None
    if umask is not None:
        mask = umask

        def preexec() -> object:
            return os.umask(mask)

    return subprocess.run(
        [sys.executable, "-m", "mien", *args],
        capture_output=True,
        text=True,
        timeout=TIMEOUT,
        preexec_fn=preexec,
    )


def snapshot(folder: Path) -> dict[str, tuple[int, bytes | str | None]]:
    """Every entry of ``folder`` (not following links): its type bits and content or target."""
    out: dict[str, tuple[int, bytes | str | None]] = {}
    for entry in sorted(folder.rglob("*")):
        st = entry.lstat()
        kind = stat.S_IFMT(st.st_mode)
        if stat.S_ISLNK(st.st_mode):
            content: bytes | str | None = os.readlink(entry)
        elif stat.S_ISREG(st.st_mode):
            content = entry.read_bytes()
        else:
            content = None
        out[str(entry.relative_to(folder))] = (kind, content)
    return out


@pytest.fixture()
def photo(tmp_path: Path) -> Path:
    dst = tmp_path / "in.jpg"
    shutil.copyfile(SAMPLE, dst)
    return dst


# -- the input itself -------------------------------------------------------------------------


@pytest.mark.parametrize("command", ["analyze", "annotate", "check"])
@pytest.mark.parametrize("how", ["same", "hardlink", "input-is-symlink"])
def test_the_input_is_never_replaced(tmp_path: Path, photo: Path, command: str, how: str) -> None:
    """`mien analyze in.jpg -o in.jpg` and `mien annotate in.jpg -o in.jpg` used to overwrite
    the photo (exit 0)."""
    inp, out = photo, photo
    if how == "hardlink":
        out = tmp_path / "hard.jpg"
        os.link(photo, out)
    elif how == "input-is-symlink":
        inp = tmp_path / "via-link.jpg"
        inp.symlink_to(photo.name)
    before = snapshot(tmp_path)
    args = {
        "analyze": ["analyze", str(inp), "-o", str(out)],
        "annotate": ["annotate", str(inp), "-o", str(out)],
        "check": ["check", "--profile", "id-photo", str(inp), "-o", str(out)],
    }[command]
    proc = mien(*args)
    assert proc.returncode == 3, proc.stderr
    assert f"OutputError: refusing to write {out}: it is the input" in proc.stderr
    assert snapshot(tmp_path) == before  # the photo unchanged, no temporary file left


def test_redact_refuses_a_hard_link_to_its_input(tmp_path: Path, photo: Path) -> None:
    hard = tmp_path / "hard.jpg"
    os.link(photo, hard)
    before = snapshot(tmp_path)
    proc = mien("redact", str(photo), "-o", str(hard))
    assert proc.returncode == 3 and f"refusing to write {hard}: it is the input" in proc.stderr
    assert snapshot(tmp_path) == before


# -- devices, FIFOs, sockets, links ------------------------------------------------------------


@pytest.fixture()
def full_device(tmp_path: Path) -> Path:
    """A character device like /dev/full (major 1, minor 7). As root it is a private node made
    in a folder of its own, so a regression destroys that copy and never the system's
    /dev/full; otherwise the real /dev/full, which a non-root process cannot replace anyway."""
    folder = tmp_path / "dev"
    folder.mkdir()
    node = folder / "full"
    try:
        os.mknod(node, stat.S_IFCHR | 0o666, os.makedev(1, 7))
    except (PermissionError, AttributeError):
        if not Path("/dev/full").exists():
            pytest.skip("needs permission to make a device node, or /dev/full")
        return Path("/dev/full")
    return node


@pytest.mark.parametrize(
    "args",
    [
        ["analyze", "{photo}", "-o", "{dev}"],
        ["check", "--profile", "id-photo", "{photo}", "-o", "{dev}"],
        ["redact", "{photo}", "-o", "{tmp}/out.jpg", "--report", "{dev}"],
    ],
    ids=["analyze", "check", "redact-report"],
)
def test_a_device_is_never_replaced(
    tmp_path: Path, photo: Path, full_device: Path, args: list[str]
) -> None:
    """As root, `mien analyze x.jpg -o /dev/full` turned the device node into a JSON file; and a
    `--report` that could not be written failed only after the redacted picture was written."""
    before = os.stat(full_device)
    argv = [a.format(photo=photo, tmp=tmp_path, dev=full_device) for a in args]
    listing = snapshot(tmp_path)
    proc = mien(*argv)
    assert proc.returncode == 3, proc.stderr
    assert f"OutputError: refusing to write {full_device}: it is a device" in proc.stderr
    after = os.lstat(full_device)
    assert stat.S_ISCHR(after.st_mode) and after.st_rdev == before.st_rdev
    assert after.st_ino == before.st_ino
    assert snapshot(tmp_path) == listing  # no out.jpg: refused before any work


@pytest.mark.parametrize("command", ["analyze", "annotate", "redact", "redact-report"])
def test_a_fifo_is_never_opened_or_replaced(tmp_path: Path, photo: Path, command: str) -> None:
    """A FIFO at the output path is refused without opening it (opening would hang)."""
    fifo = tmp_path / ("out.json" if command in ("analyze", "redact-report") else "out.jpg")
    os.mkfifo(fifo)
    before = snapshot(tmp_path)
    args = {
        "analyze": ["analyze", str(photo), "-o", str(fifo)],
        "annotate": ["annotate", str(photo), "-o", str(fifo)],
        "redact": ["redact", str(photo), "-o", str(fifo)],
        "redact-report": [
            "redact",
            str(photo),
            "-o",
            str(tmp_path / "r.jpg"),
            "--report",
            str(fifo),
        ],
    }[command]
    proc = mien(*args)  # the timeout fails the test rather than hanging it
    assert proc.returncode == 3, proc.stderr
    assert f"refusing to write {fifo}: it is a FIFO" in proc.stderr
    assert stat.S_ISFIFO(fifo.lstat().st_mode)
    assert snapshot(tmp_path) == before


def test_a_socket_is_never_replaced(tmp_path: Path, photo: Path) -> None:
    path = tmp_path / "out.jsonl"
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
        sock.bind(str(path))
        proc = mien("analyze", str(photo), "-o", str(path))
        assert proc.returncode == 3, proc.stderr
        assert f"refusing to write {path}: it is a socket" in proc.stderr
        assert stat.S_ISSOCK(path.lstat().st_mode)


@pytest.mark.parametrize("command", ["analyze", "annotate", "redact", "redact-report", "check"])
@pytest.mark.parametrize("dangling", [False, True], ids=["link", "dangling-link"])
def test_a_symlink_at_the_output_is_neither_followed_nor_replaced(
    tmp_path: Path, photo: Path, command: str, dangling: bool
) -> None:
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    victim = elsewhere / "victim.jpg"
    if not dangling:
        victim.write_bytes(b"someone else's file")
    work = tmp_path / "work"
    work.mkdir()
    link = work / "out.jpg"
    link.symlink_to(victim)
    args = {
        "analyze": ["analyze", str(photo), "-o", str(link)],
        "annotate": ["annotate", str(photo), "-o", str(link)],
        "redact": ["redact", str(photo), "-o", str(link)],
        "redact-report": ["redact", str(photo), "-o", str(work / "r.jpg"), "--report", str(link)],
        "check": ["check", "--profile", "publish-safe", str(photo), "-o", str(link)],
    }[command]
    before = snapshot(tmp_path)
    proc = mien(*args)
    assert proc.returncode == 3, proc.stderr
    assert f"refusing to write {link}: it is a symbolic link" in proc.stderr
    assert snapshot(tmp_path) == before  # the link, its target (or its absence) unchanged
    assert not dangling or not victim.exists()


def test_the_report_is_not_the_output(tmp_path: Path, photo: Path) -> None:
    out = tmp_path / "out.jpg"
    proc = mien("redact", str(photo), "-o", str(out), "--report", str(out))
    assert proc.returncode == 3 and f"the report {out}: it is the output path" in proc.stderr
    assert not out.exists()


def test_batch_job_files_are_not_written_through_links(tmp_path: Path, photo: Path) -> None:
    """The job folder's lock (opened in place) is never a symlink to another file, and a job
    folder that cannot be created is an OutputError (exit 3), not a traceback."""
    inputs = tmp_path / "inputs"
    inputs.mkdir()
    shutil.move(photo, inputs / "a.jpg")
    job = tmp_path / "job"
    job.mkdir()
    victim = tmp_path / "victim.txt"
    victim.write_text("keep me")
    (job / ".lock").symlink_to(victim)
    proc = mien("batch", str(inputs), "-o", str(job), "--workers", "1", "-q")
    assert proc.returncode == 3, proc.stderr
    assert f"refusing to write {job / '.lock'}: it is a symbolic link" in proc.stderr
    assert victim.read_text() == "keep me" and (job / ".lock").is_symlink()
    blocker = tmp_path / "file"
    blocker.write_text("x")
    proc = mien("batch", str(inputs), "-o", str(blocker / "job"), "--workers", "1", "-q")
    assert proc.returncode == 3 and "OutputError: cannot create the job folder" in proc.stderr


# -- both or neither ---------------------------------------------------------------------------


def test_output_and_report_are_committed_together(
    tmp_path: Path, photo: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """The report's path becomes unwritable while the picture is being redacted (here: a folder
    appears there): neither the redacted picture nor the report is left, exit 3."""
    import mien.cli.redact as cli_redact
    from mien.cli import main

    out, rep = tmp_path / "out.jpg", tmp_path / "audit.json"
    real_doc = cli_redact._report_doc

    def doc_then_block(*args: object, **kw: object) -> object:
        rep.mkdir()  # after the up-front check, before the commit
        return real_doc(*args, **kw)  # type: ignore[arg-type]

    monkeypatch.setattr(cli_redact, "_report_doc", doc_then_block)
    before = snapshot(tmp_path)
    assert main(["redact", str(photo), "-o", str(out), "--report", str(rep), "--threads", "2"]) == 3
    err = capsys.readouterr().err
    assert f"OutputError: refusing to write {rep}: it is a folder" in err
    assert "covered ->" not in err  # no success line for an output that was not committed
    assert not out.exists()
    assert snapshot(tmp_path) == {**before, "audit.json": (stat.S_IFDIR, None)}


def test_commit_rechecks_the_rule(tmp_path: Path) -> None:
    """A path that became a symlink or a FIFO while the output was written is refused at commit
    time: the link and its target are left alone, no temporary file is left."""
    from mien.media.write import OutputError, atomic_output, committed_together, write_image

    victim = tmp_path / "victim.txt"
    victim.write_text("keep me")
    target = tmp_path / "out.json"
    with pytest.raises(OutputError, match="it is a symbolic link"), atomic_output(target) as fh:
        fh.write(b"{}")
        target.symlink_to(victim)
    assert victim.read_text() == "keep me" and target.is_symlink()
    target.unlink()
    with pytest.raises(OutputError, match="FIFO"), atomic_output(target) as fh:
        fh.write(b"{}")
        os.mkfifo(target)
    assert stat.S_ISFIFO(target.lstat().st_mode)
    target.unlink()
    # together: the second target turns into a folder, so the first is not committed either
    pic = tmp_path / "pic.png"
    rgb = Image.open(SAMPLE).convert("RGB")
    import numpy as np

    with pytest.raises(OutputError, match="it is a folder"), committed_together():
        write_image(pic, np.asarray(rgb))
        with atomic_output(target) as fh:
            fh.write(b"{}")
        target.mkdir()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out.json", "victim.txt"]


# -- one file mode -----------------------------------------------------------------------------


@pytest.mark.parametrize("umask", [0o027, 0o002])
def test_every_output_gets_0666_minus_umask(tmp_path: Path, photo: Path, umask: int) -> None:
    """Pictures and JSON used to be created 0600 while videos were 0644."""
    want = 0o666 & ~umask
    runs = [
        ["analyze", str(photo), "-o", str(tmp_path / "a.jsonl")],
        ["annotate", str(photo), "-o", str(tmp_path / "ann.png")],
        ["redact", str(photo), "-o", str(tmp_path / "r.jpg"), "--report", str(tmp_path / "r.json")],
    ]
    if umask == 0o027:  # a video too (once: it is the slow one)
        clip = clip_head(media("single_face.mp4"), tmp_path / "clip.mp4", 0.3)
        runs.append(
            [
                "redact",
                str(clip),
                "-o",
                str(tmp_path / "v.mp4"),
                "--report",
                str(tmp_path / "v.json"),
            ]
        )
    for argv in runs:
        proc = mien(*argv, "--threads", "2", umask=umask)
        assert proc.returncode == 0, (argv, proc.stderr)
    made = {"a.jsonl", "ann.png", "r.jpg", "r.json"} | (
        {"v.mp4", "v.json"} if umask == 0o027 else set()
    )
    modes = {p.name: stat.S_IMODE(p.stat().st_mode) for p in tmp_path.iterdir()}
    assert {name: modes.get(name) for name in made} == dict.fromkeys(made, want), oct(want)


# -- folders and what is a video ---------------------------------------------------------------


@pytest.mark.parametrize("name", ["x.jpg", "x.mp4", "x.PNG"])
def test_redact_folder_to_a_file_name_is_a_usage_error(tmp_path: Path, name: str) -> None:
    """`mien redact folder -o x.jpg` used to create a folder named x.jpg."""
    folder = tmp_path / "photos"
    folder.mkdir()
    shutil.copyfile(SAMPLE, folder / "a.jpg")
    proc = mien("redact", str(folder), "-o", str(tmp_path / name))
    assert proc.returncode == 2, proc.stderr
    assert "-o must be a folder" in proc.stderr and "nothing was created" in proc.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == ["photos"]


def _still_pictures(folder: Path) -> dict[str, Path]:
    svg = folder / "x.svg"
    svg.write_text(
        '<svg xmlns="http://www.w3.org/2000/svg" width="8" height="8"><rect width="8" height="8"/>'
        "</svg>"
    )
    rgb = Image.open(SAMPLE).convert("RGB").resize((64, 64))
    rgb.save(folder / "x.jp2", "JPEG2000")
    rgb.save(folder / "x.ico", "ICO")
    return {"svg": svg, "jp2": folder / "x.jp2", "ico": folder / "x.ico"}


@pytest.mark.parametrize("kind", ["svg", "jp2", "ico"])
def test_still_pictures_are_not_videos(tmp_path: Path, kind: str) -> None:
    """`mien redact x.svg|x.jp2|x.ico -o out.jpg` used to exit 3 "unknown video suffix": PyAV
    opens still pictures through its image demuxers. The picture loader decides: exit 1."""
    src = _still_pictures(tmp_path)[kind]
    out = tmp_path / "out.jpg"
    proc = mien("redact", str(src), "-o", str(out))
    assert proc.returncode == 1, proc.stderr
    assert f"mien: {src}: " in proc.stderr
    assert "UnsupportedMedia" in proc.stderr or "InvalidImage" in proc.stderr
    assert "video" not in proc.stderr and "OutputError" not in proc.stderr
    assert not out.exists()


def test_media_kind(tmp_path: Path) -> None:
    from mien.media.sniff import media_kind

    for kind, path in _still_pictures(tmp_path).items():
        assert media_kind(path) == "image", kind
    ppm = tmp_path / "photo.data"  # a picture format with an unusual suffix
    Image.open(SAMPLE).save(ppm, "PPM")
    assert media_kind(ppm) == "image"
    clip = clip_head(media("single_face.mp4"), tmp_path / "clip.mp4", 0.2)
    odd = tmp_path / "clip.bin"  # a real video with an unusual suffix
    shutil.copyfile(clip, odd)
    assert media_kind(odd) == "video" and media_kind(clip) == "video"
    text = tmp_path / "notes.bin"
    text.write_text("hello")
    fifo = tmp_path / "pipe.bin"
    os.mkfifo(fifo)  # never opened: it would block
    assert media_kind(text) is None and media_kind(fifo) is None
    assert media_kind(tmp_path / "missing.bin") is None
    assert media_kind(SAMPLE) == "image" and media_kind("a.MKV") == "video"


@pytest.mark.parametrize("command", ["analyze-events", "redact-stream", "redact-events"])
def test_live_outputs_follow_the_rule(tmp_path: Path, command: str) -> None:
    """A live source (a clip read with --stream): the events log and the covered stream are
    written in place as they happen, so the rule is checked before they are opened."""
    clip = clip_head(media("single_face.mp4"), tmp_path / "clip.mp4", 0.3)
    victim = tmp_path / "victim"
    victim.write_text("keep me")
    link = tmp_path / ("out.mp4" if command == "redact-stream" else "events.jsonl")
    link.symlink_to(victim)
    args = {
        "analyze-events": ["analyze", str(clip), "--stream", "-o", str(link)],
        "redact-stream": ["redact", str(clip), "--stream", "-o", str(link)],
        "redact-events": [
            "redact",
            str(clip),
            "--stream",
            "-o",
            str(tmp_path / "covered.mp4"),
            "--report",
            str(link),
        ],
    }[command]
    before = snapshot(tmp_path)
    proc = mien(*args)
    assert proc.returncode == 3, proc.stderr
    assert f"refusing to write {link}: it is a symbolic link" in proc.stderr
    assert snapshot(tmp_path) == before


# -- a write that fails half-way ---------------------------------------------------------------


def test_a_failed_write_is_an_output_error_and_leaves_nothing(tmp_path: Path, photo: Path) -> None:
    """A file size limit (RLIMIT_FSIZE, as a full disk would) cuts the writes short. `analyze -o`
    used to crash with a traceback (exit 1); `redact` and `annotate` used to write a truncated
    picture and exit 0 (Pillow's encoders ignore a short write to a file descriptor)."""
    import json
    import resource

    def limited() -> None:  # a JSON line is about 1 kB, a picture tens of kB
        resource.setrlimit(resource.RLIMIT_FSIZE, (400, 400))

    def roomier() -> None:  # room for the report (about 0.5 kB), not for the picture
        resource.setrlimit(resource.RLIMIT_FSIZE, (4000, 4000))

    runs = {
        "a.jsonl": ["analyze", str(photo), "-o", str(tmp_path / "a.jsonl")],
        "r.jpg": ["redact", str(photo), "-o", str(tmp_path / "r.jpg")],
        "ann.png": ["annotate", str(photo), "-o", str(tmp_path / "ann.png")],
    }
    for name, argv in runs.items():
        proc = subprocess.run(
            [sys.executable, "-m", "mien", *argv, "--threads", "2"],
            capture_output=True,
            text=True,
            timeout=TIMEOUT,
            preexec_fn=limited,
        )
        assert proc.returncode == 3, (argv, proc.stderr)
        assert f"OutputError: cannot write {tmp_path / name}: File too large" in proc.stderr
        assert "Traceback" not in proc.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == ["in.jpg"]  # no output, no .part
    # with a report: the picture fails, the (small) report says so; it claims no output
    rep = tmp_path / "r.json"
    proc = subprocess.run(
        [sys.executable, "-m", "mien", *runs["r.jpg"], "--report", str(rep)],
        capture_output=True,
        text=True,
        timeout=TIMEOUT,
        preexec_fn=roomier,
    )
    assert proc.returncode == 3, proc.stderr
    assert json.loads(rep.read_text())["errors"][0]["code"] == "OutputError"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["in.jpg", "r.json"]
