"""materialize/checkout: exactly the asked path, at any revision, and nothing that leads outside it."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from slipway.errors import SourceError, TransientSourceError
from slipway.model import Repository
from slipway.source import GitSource
from tests.gitservers import Executable, FileValue, HttpGitServer, Symlink, commit, git, make_repo, push

FILES: dict[str, FileValue] = {
    "k8s/prod/app.yaml": "app: prod\n",
    "k8s/prod/sub/db.yaml": "db: prod\n",
    "k8s/prod/run.sh": Executable("#!/bin/sh\necho hi\n"),
    "k8s/staging/app.yaml": "app: staging\n",
    "k8s/base.yaml": "base\n",
    "top.yaml": "top\n",
}


def tree(root: Path) -> dict[str, str]:
    """Every entry under root: files with their text, symlinks as '-> target', directories as '/'."""
    out = {}
    for dirpath, dirnames, filenames in os.walk(root):
        for name in dirnames + filenames:
            p = Path(dirpath) / name
            rel = str(p.relative_to(root))
            if p.is_symlink():
                out[rel] = "-> " + os.readlink(p)
            elif p.is_dir():
                out[rel] = "/"
            else:
                out[rel] = p.read_text()
    return out


@pytest.fixture
def local_repo(tmp_path: Path) -> tuple[Path, Repository]:
    work = make_repo(tmp_path / "work", FILES)
    return work, Repository("local-repo", str(tmp_path / "work.git"))


@pytest.fixture
def dest(tmp_path: Path) -> Path:
    d = tmp_path / "dest"
    d.mkdir()
    return d


def test_subdirectory_only(source: GitSource, local_repo: tuple[Path, Repository], dest: Path) -> None:
    _, repo = local_repo
    head = source.fetch(repo)
    out = source.materialize(repo, head, "k8s/prod", dest)
    assert out == dest / "k8s" / "prod"
    assert tree(dest) == {
        "k8s": "/",
        "k8s/prod": "/",
        "k8s/prod/sub": "/",
        "k8s/prod/app.yaml": "app: prod\n",
        "k8s/prod/run.sh": "#!/bin/sh\necho hi\n",
        "k8s/prod/sub/db.yaml": "db: prod\n",
    }
    assert (out / "run.sh").stat().st_mode & 0o111 and not (out / "app.yaml").stat().st_mode & 0o111


def test_whole_repository_and_normalized_paths(
    source: GitSource, local_repo: tuple[Path, Repository], tmp_path: Path
) -> None:
    _, repo = local_repo
    head = source.fetch(repo)
    for i, path in enumerate(["", ".", "k8s/prod/", "./k8s//prod"]):
        dest = tmp_path / f"d{i}"
        dest.mkdir()
        out = source.materialize(repo, head, path, dest)
        if path.strip("./") == "":
            assert out == dest and set(tree(dest)) >= {"top.yaml", "k8s/prod/app.yaml", "k8s/staging/app.yaml"}
        else:
            assert out == dest / "k8s/prod"


def test_older_revision(source: GitSource, local_repo: tuple[Path, Repository], dest: Path, tmp_path: Path) -> None:
    work, repo = local_repo
    old = source.fetch(repo)
    commit(work, {"k8s/prod/app.yaml": "app: prod v2\n", "k8s/prod/sub/db.yaml": None, "k8s/prod/new.yaml": "n\n"})
    push(work)
    new = source.fetch(repo)
    assert new != old

    source.materialize(repo, old, "k8s/prod", dest)
    assert {k: v for k, v in tree(dest).items() if v != "/"} == {
        "k8s/prod/app.yaml": "app: prod\n",
        "k8s/prod/run.sh": "#!/bin/sh\necho hi\n",
        "k8s/prod/sub/db.yaml": "db: prod\n",
    }
    newer = tmp_path / "newer"
    newer.mkdir()
    source.materialize(repo, new[:10], "k8s/prod", newer)  # an abbreviated SHA works too
    assert {k: v for k, v in tree(newer).items() if v != "/"} == {
        "k8s/prod/app.yaml": "app: prod v2\n",
        "k8s/prod/new.yaml": "n\n",
        "k8s/prod/run.sh": "#!/bin/sh\necho hi\n",
    }


def test_single_file_target(source: GitSource, local_repo: tuple[Path, Repository], dest: Path) -> None:
    _, repo = local_repo
    head = source.fetch(repo)
    out = source.materialize(repo, head, "k8s/base.yaml", dest)
    assert out == dest / "k8s"
    assert tree(dest) == {"k8s": "/", "k8s/base.yaml": "base\n"}


def test_missing_target_path(source: GitSource, local_repo: tuple[Path, Repository], dest: Path) -> None:
    _, repo = local_repo
    head = source.fetch(repo)
    for path in ("k8s/production", "nope/deeper", "top.yaml/x"):
        with pytest.raises(SourceError) as err:
            source.materialize(repo, head, path, dest)
        message = str(err.value)
        assert "repository local-repo" in message and repo.url in message
        assert f'target_path "{path}"' in message and head[:12] in message and "does not exist" in message
    assert tree(dest) == {}


@pytest.mark.parametrize("bad", ["../x", "k8s/../../etc", "..", "/etc", "/", "//etc/passwd", "k8s/.."])
def test_escaping_target_path_refused(
    source: GitSource, local_repo: tuple[Path, Repository], dest: Path, bad: str
) -> None:
    _, repo = local_repo
    head = source.fetch(repo)
    with pytest.raises(SourceError, match="repository local-repo") as err:
        source.materialize(repo, head, bad, dest)
    assert "absolute" in str(err.value) or "leaves the repository" in str(err.value)
    assert tree(dest) == {}


@pytest.mark.parametrize(
    ("at", "link"),
    [
        ("k8s/prod/zz-link", "/etc"),
        ("k8s/prod/zz-link", "/etc/passwd"),
        ("k8s/prod/zz-link", "../../../etc"),
        ("k8s/prod/zz-link", "../../.."),
        ("k8s/prod/sub/zz-link", "../../../../"),
        ("k8s/prod/zz-link", "sub/../../../../x"),
        ("k8s/zz-link", "../../"),
    ],
)
def test_symlink_leading_outside_refused(
    source: GitSource, local_repo: tuple[Path, Repository], dest: Path, at: str, link: str
) -> None:
    work, repo = local_repo
    commit(work, {at: Symlink(link)}, "a link")
    push(work)
    head = source.fetch(repo)
    target = "k8s/prod" if at.startswith("k8s/prod/") else "k8s"
    name = at.removeprefix(target + "/")
    with pytest.raises(SourceError, match=rf"symlink '{name}' points to .*, outside the repository") as err:
        source.materialize(repo, head, target, dest)
    assert "repository local-repo" in str(err.value)
    assert tree(dest) == {}  # what was written before the link was found is gone again
    # paths that do not contain the link are fine
    out = source.materialize(repo, head, "k8s/staging", dest)
    assert tree(out) == {"app.yaml": "app: staging\n"}
    assert set(tree(dest)) == {"k8s", "k8s/staging", "k8s/staging/app.yaml"}


def test_symlink_climbing_through_another_symlink_refused(
    source: GitSource, local_repo: tuple[Path, Repository], dest: Path
) -> None:
    work, repo = local_repo
    # On paper "up" ends at the repository root (k8s/prod/here/../../..); on disk "here" is
    # k8s/prod itself, so it ends one level above the root: outside dest.
    commit(work, {"k8s/prod/here": Symlink("."), "k8s/prod/up": Symlink("here/../../..")}, "tricky links")
    push(work)
    head = source.fetch(repo)
    with pytest.raises(SourceError, match=r"symlink 'up' resolves to .*, outside the repository"):
        source.materialize(repo, head, "k8s/prod", dest)
    assert tree(dest) == {}


def test_symlinks_inside_the_repository_are_kept(
    source: GitSource, local_repo: tuple[Path, Repository], dest: Path, tmp_path: Path
) -> None:
    work, repo = local_repo
    links = {
        "k8s/prod/alias.yaml": Symlink("app.yaml"),
        "k8s/prod/sub/up.yaml": Symlink("../app.yaml"),
        "k8s/prod/base.yaml": Symlink("../base.yaml"),  # leaves k8s/prod, stays in the repository
    }
    commit(work, links)
    push(work)
    head = source.fetch(repo)
    out = source.materialize(repo, head, "k8s/prod", dest)
    assert os.readlink(out / "alias.yaml") == "app.yaml"
    assert (out / "sub" / "up.yaml").read_text() == "app: prod\n"
    assert os.readlink(out / "base.yaml") == "../base.yaml"
    assert not (out / "base.yaml").exists()  # only k8s/prod was asked for
    whole = tmp_path / "whole"
    root = source.materialize(repo, head, "", whole)  # dest need not exist yet
    assert (root / "k8s" / "prod" / "base.yaml").read_text() == "base\n"


def test_target_path_that_is_a_symlink_refused(
    source: GitSource, local_repo: tuple[Path, Repository], dest: Path
) -> None:
    work, repo = local_repo
    commit(work, {"k8s/current": Symlink("prod")})
    push(work)
    head = source.fetch(repo)
    with pytest.raises(SourceError, match=r'target_path "k8s/current".* is a symbolic link'):
        source.materialize(repo, head, "k8s/current", dest)


def test_export_attributes_do_not_change_what_is_deployed(
    source: GitSource, local_repo: tuple[Path, Repository], dest: Path
) -> None:
    work, repo = local_repo
    commit(
        work,
        {
            ".gitattributes": "k8s/prod/app.yaml export-ignore\n*.yaml export-subst\n",
            "k8s/prod/v.yaml": "$Format:%H$\n",
        },
    )
    push(work)
    head = source.fetch(repo)
    out = source.materialize(repo, head, "k8s/prod", dest)
    assert (out / "app.yaml").read_text() == "app: prod\n"
    assert (out / "v.yaml").read_text() == "$Format:%H$\n"


def test_revisions(source: GitSource, local_repo: tuple[Path, Repository], dest: Path) -> None:
    _, repo = local_repo
    head = source.fetch(repo)
    assert source.materialize(repo, "refs/heads/main", "k8s/prod", dest) == dest / "k8s/prod"
    for bad in ("0" * 40, "no-such-ref", "--output=/tmp/x", "a b"):
        with pytest.raises(SourceError, match="repository local-repo") as err:
            source.materialize(repo, bad, "k8s", dest)
        assert "revision" in str(err.value)
    assert head


def test_materialize_fetches_when_needed(source: GitSource, local_repo: tuple[Path, Repository], dest: Path) -> None:
    work, repo = local_repo
    head = git("rev-parse", "HEAD", cwd=work)
    assert not source.mirror_path(repo).exists()
    source.materialize(repo, head, "k8s/staging", dest)  # no fetch before: the mirror is made
    new = commit(work, {"k8s/staging/app.yaml": "app: staging v2\n"})
    push(work)
    with source.checkout(repo, new, "k8s/staging") as out:  # a revision the mirror did not know yet
        assert (out / "app.yaml").read_text() == "app: staging v2\n"
        tmp = out
    assert not tmp.exists()


def test_checkout_removes_its_directory_on_error(source: GitSource, local_repo: tuple[Path, Repository]) -> None:
    _, repo = local_repo
    head = source.fetch(repo)
    with pytest.raises(RuntimeError), source.checkout(repo, head, "k8s") as out:
        assert (out / "prod" / "app.yaml").is_file()
        raise RuntimeError("boom")
    assert not out.exists()
    assert list((source.cache_dir / "tmp").iterdir()) == []


def test_forget(source: GitSource, local_repo: tuple[Path, Repository]) -> None:
    _, repo = local_repo
    head = source.fetch(repo)
    mirror = source.mirror_path(repo)
    assert mirror.is_dir()
    source.forget(repo.id)
    assert not mirror.exists() and not (source.cache_dir / repo.id).exists()
    source.forget(repo.id)  # forgetting twice is fine
    assert source.fetch(repo) == head


def test_one_mirror_per_repository_and_url(source: GitSource, tmp_path: Path) -> None:
    make_repo(tmp_path / "a", {"f": "a\n"})
    make_repo(tmp_path / "b", {"f": "b\n"})
    ra = Repository("same-id", str(tmp_path / "a.git"))
    rb = Repository("same-id", str(tmp_path / "b.git"))
    assert source.mirror_path(ra) != source.mirror_path(rb)
    assert source.fetch(ra) != source.fetch(rb)


def test_concurrent_fetches_in_threads(git_http_server: HttpGitServer, source: GitSource, repo_name: str) -> None:
    work = git_http_server.create_repo(repo_name, FILES)
    head = git("rev-parse", "HEAD", cwd=work)
    repo = Repository("busy-repo", git_http_server.public_url(repo_name))
    results: list[str] = []
    errors: list[BaseException] = []

    def run() -> None:
        try:
            results.append(GitSource().fetch(repo))
        except BaseException as e:  # pragma: no cover - reported below
            errors.append(e)

    threads = [threading.Thread(target=run) for _ in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    assert results == [head] * 6
    assert [p.name for p in source.mirror_path(repo).parent.iterdir() if p.name.startswith(".tmp")] == []


class GitCalls:
    """A ``git`` first on PATH that logs the subcommand of every call slipway makes, then runs the real git
    (git's own children find the real one: git puts its exec-path first on their PATH)."""

    def __init__(self, bin_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
        bin_dir.mkdir()
        self.log = bin_dir / "calls"
        self.log.touch()
        wrapper = bin_dir / "git"
        wrapper.write_text(
            "#!/bin/sh\n"
            'sub=""; skip=""\n'
            'for a in "$@"; do\n'
            '  if [ -n "$skip" ]; then skip=""; continue; fi\n'
            '  case "$a" in -c|--git-dir) skip=1 ;; -*) ;; *) sub="$a"; break ;; esac\n'
            "done\n"
            f'echo "$sub" >> "{self.log}"\n'
            f'exec {shutil.which("git")} "$@"\n'
        )
        wrapper.chmod(0o755)
        monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ['PATH']}")

    def take(self) -> list[str]:
        calls = self.log.read_text().split()
        self.log.write_text("")
        return calls


def test_workflows_of_one_repository_share_one_fetch_and_one_listing(
    local_repo: tuple[Path, Repository], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    work, repo = local_repo
    head = git("rev-parse", "HEAD", cwd=work)
    calls = GitCalls(tmp_path / "bin", monkeypatch)
    GitSource(cache_dir=tmp_path / "alone").materialize(repo, head, "k8s/prod", tmp_path / "alone-dest")
    alone = calls.take()
    together = GitSource(cache_dir=tmp_path / "together")
    barrier = threading.Barrier(4)
    errors: list[BaseException] = []

    def run(i: int) -> None:
        try:
            barrier.wait()  # all four find the mirror missing, as a cold start's workflows do
            out = together.materialize(repo, head, "k8s/prod", tmp_path / f"dest-{i}")
            assert tree(out)["sub/db.yaml"] == "db: prod\n"
        except BaseException as e:  # pragma: no cover - reported below
            errors.append(e)

    threads = [threading.Thread(target=run, args=(i,)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    shared = calls.take()
    assert shared.count("fetch") == alone.count("fetch") == 1
    assert shared.count("ls-tree") == alone.count("ls-tree") > 0


def test_fetch_waits_for_another_process(source: GitSource, local_repo: tuple[Path, Repository]) -> None:
    work, repo = local_repo
    source.fetch(repo)
    # The branch moves, so the next fetch has something to fetch (an up-to-date mirror needs no lock).
    head = commit(work, {"moved.txt": "1"})
    push(work)
    lock = source.mirror_path(repo).with_suffix(".lock")
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import fcntl, sys, time; f = open(sys.argv[1], 'a'); fcntl.flock(f, fcntl.LOCK_EX); "
            "print('locked', flush=True); time.sleep(float(sys.argv[2]))",
            str(lock),
            "1.0",
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "locked"
        started = time.monotonic()
        with pytest.raises(TransientSourceError, match="another process is still fetching"):
            source.fetch(repo, timeout=0.3)
        assert source.fetch(repo, timeout=30) == head
        assert time.monotonic() - started >= 0.9  # it waited for the holder
    finally:
        holder.kill()
        holder.wait()


def test_deployed_revision_survives_a_force_push_and_gc(
    source: GitSource, local_repo: tuple[Path, Repository], dest: Path
) -> None:
    work, repo = local_repo
    first = source.fetch(repo)
    git("checkout", "--quiet", "--orphan", "rewritten", cwd=work)
    rewritten = commit(work, {"k8s/prod/app.yaml": "app: rewritten\n"}, "history rewritten")
    push(work, "main")
    assert source.fetch(repo) == rewritten
    git("--git-dir", source.mirror_path(repo), "gc", "--quiet", "--prune=now")
    source.materialize(repo, first, "k8s/prod", dest)  # the rollback target is still there
    assert (dest / "k8s/prod/app.yaml").read_text() == "app: prod\n"


def test_unwritable_destination_is_a_clear_error(
    source: GitSource, local_repo: tuple[Path, Repository], dest: Path
) -> None:
    _, repo = local_repo
    head = source.fetch(repo)
    (dest / "k8s").mkdir()
    (dest / "k8s" / "prod").write_text("a file where a directory goes")
    with pytest.raises(SourceError, match=r"repository local-repo .*cannot write into"):
        source.materialize(repo, head, "k8s/prod", dest)


def chained_links_commit(origin: Path) -> str:
    """A commit whose root tree holds ``l1 -> .``, ``l2 -> l1/..``, ``l3 -> l2/..`` and a directory ``l3``
    with the file ``evil``: on paper every link stays in the repository; on disk ``l3/evil`` is two
    levels above it. Git's porcelain cannot make such a tree (``l3`` is twice in it); a hostile
    server can serve one."""

    def blob(text: str) -> str:
        return subprocess.run(["git", "--git-dir", str(origin), "hash-object", "-w", "--stdin"], input=text,
                              capture_output=True, text=True, check=True).stdout.strip()  # fmt: skip

    def mktree(lines: list[str]) -> str:
        return subprocess.run(["git", "--git-dir", str(origin), "mktree"], input="".join(lines),
                              capture_output=True, text=True, check=True).stdout.strip()  # fmt: skip

    sub = mktree([f"100644 blob {blob('written outside')}\tevil\n"])
    root = mktree([
        f"120000 blob {blob('.')}\tl1\n",
        f"120000 blob {blob('l1/..')}\tl2\n",
        f"120000 blob {blob('l2/..')}\tl3\n",
        f"040000 tree {sub}\tl3\n",
        f"100644 blob {blob('app: ok')}\tapp.yaml\n",
    ])  # fmt: skip
    sha = git("-c", "user.name=t", "-c", "user.email=t@t", "--git-dir", origin, "commit-tree", "-m", "links", root)
    git("--git-dir", origin, "update-ref", "refs/heads/main", sha)
    return sha


def snapshot(*dirs: Path, skip: Path) -> dict[str, tuple[int, int]]:
    """Every entry under ``dirs`` (but not under ``skip``) with its type and mtime, and the dirs' own."""
    out = {}
    for d in dirs:
        out[str(d)] = (d.lstat().st_mode, d.lstat().st_mtime_ns)
        for p in d.rglob("*"):
            if p != skip and skip not in p.parents:
                out[str(p)] = (p.lstat().st_mode, p.lstat().st_mtime_ns)
    return out


def test_chained_symlinks_never_write_outside_the_checkout(source: GitSource, tmp_path: Path) -> None:
    work = make_repo(tmp_path / "work", {"app.yaml": "app: ok\n"})
    repo = Repository("links-repo", str(tmp_path / "work.git"))
    assert work.is_dir()
    sha = chained_links_commit(tmp_path / "work.git")
    # A mirror filled without git's object checks, as slipway's mirrors were before them.
    mirror = source.mirror_path(repo)
    mirror.parent.mkdir(parents=True)
    git("init", "--quiet", "--bare", mirror)
    git("--git-dir", mirror, "fetch", "--quiet", tmp_path / "work.git", "+refs/heads/main:refs/heads/main")

    outer = tmp_path / "outer"
    dest = outer / "inner" / "dest"
    dest.mkdir(parents=True)
    before = snapshot(outer, outer / "inner", skip=dest)
    time.sleep(0.01)  # a directory changed and changed back would still show a newer mtime
    with pytest.raises(SourceError) as err:
        source.materialize(repo, sha, "", dest)
    message = str(err.value)
    assert "repository links-repo" in message and repo.url in message
    assert "'l3/evil'" in message and "symlink 'l3'" in message
    assert snapshot(outer, outer / "inner", skip=dest) == before
    assert not (outer / "evil").exists() and not (outer / "inner" / "evil").exists()
    assert tree(dest) == {}


def test_fetch_checks_the_objects_it_receives(
    git_http_server: HttpGitServer, source: GitSource, repo_name: str
) -> None:
    git_http_server.create_repo(repo_name, {"app.yaml": "app: ok\n"})
    repo = Repository("fsck-repo", git_http_server.public_url(repo_name))
    good = source.fetch(repo)
    bad = chained_links_commit(git_http_server.root / f"{repo_name}.git")
    with pytest.raises(SourceError) as err:
        source.fetch(repo)
    message = str(err.value)
    assert "repository fsck-repo" in message and "duplicateEntries" in message
    assert source.fetch(repo, want=good) == good  # the mirror still serves what it had
    with pytest.raises(SourceError, match="duplicateEntries"):
        source.materialize(repo, bad, "", source.cache_dir / "never")
    assert not (source.cache_dir / "never").exists()


def test_links_are_written_after_the_files_and_may_point_at_them(
    source: GitSource, local_repo: tuple[Path, Repository], dest: Path
) -> None:
    work, repo = local_repo
    # "a-link" sorts before the directory it points into; it must still resolve once written.
    commit(work, {"k8s/prod/a-link": Symlink("sub"), "k8s/prod/sub/z-link": Symlink("db.yaml")})
    push(work)
    head = source.fetch(repo)
    out = source.materialize(repo, head, "k8s/prod", dest)
    assert (out / "a-link" / "db.yaml").read_text() == "db: prod\n"
    assert (out / "sub" / "z-link").read_text() == "db: prod\n"
    assert os.readlink(out / "a-link") == "sub"
