"""The render stage as the engine runs it: a workflow's path materialized from Git (or a local
directory, for ``diff --local``) into a scratch directory and rendered with its options.

A workflow of a repository of type helm renders a chart pulled from that chart repository (HTTP or
OCI) at the revision ``<version>@sha256:<digest>`` (:mod:`slipway.render.chartsource`); values files
``$<repository id>/<path>`` are read from other Git repositories at the commits the revision names
(:mod:`slipway.workflowrev`).

A render that reads the rest of the repository (Jsonnet libraries, a chart's dependency by path)
gets the whole work tree; a chart repository's login comes from the registered repository of
type helm whose URL is the longest prefix of the chart's. What a render may reach is decided here,
for every front: chart repositories only as registered (or listed by the administrator), kustomize's
remote resources only for workflows the administrator lists (see :mod:`slipway.settings`). SOPS
files are decrypted with the workflow's keys before the render (:mod:`slipway.render.sops`) and
Flux's post-build substitution runs after it (:mod:`slipway.render.substitute`).
"""

from __future__ import annotations

import contextlib
import shutil
import tempfile
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

from . import settings
from .catalog import Catalog
from .errors import DecryptionError, ManifestError
from .model import Repository, Workflow

if TYPE_CHECKING:
    from .kube import Kube
    from .plan.model import Plan
    from .render import Manifest, RenderContext
    from .render.charts import Fetcher


class Rendering(Catalog):
    def kube_for(self, wf: Workflow) -> Kube:  # the engine's: a Helm render asks the cluster's capabilities
        raise NotImplementedError

    def render(
        self, wf: Workflow, repo: Repository, revision: str, cancel: threading.Event | None = None
    ) -> list[Manifest]:
        """Materialize the workflow's path at ``revision`` and render it (stopped when ``cancel`` is set).

        A path that renders no object is an error naming what it holds (a typo in target_path,
        or files no renderer reads), unless the workflow allows an empty render.
        """
        from . import render as render_stage
        from .workflowrev import parse

        context = self._render_context(wf, cancel)
        main, values = parse(revision)
        shown = main if repo.type == "helm" else main[:12]
        with _scratch(f"repository {repo.id} at {shown}") as tmp:
            context.values_refs = self._values_refs(wf, values, tmp / "values")
            if repo.type == "helm":
                from .render.chartsource import pull

                with self._chart_fetcher() as fetcher:
                    root = pull(fetcher, repo.url, str(wf.chart), main, tmp / "chart", f"chart {wf.chart}")
                context.repository_root = root
                return self._render_root(wf, root, context)
            root = self.source.materialize(repo, main, wf.target_path, tmp / "path")
            if render_stage.needs_whole_repository(root, context):
                whole = self.source.materialize(repo, main, "", tmp / "repo")
                root = whole / wf.target_path if wf.target_path else whole
                context.repository_root = whole
            self._decrypt(wf, root, context)
            return self._render_root(wf, root, context)

    def _values_refs(self, wf: Workflow, values: dict[str, str], tmp: Path) -> dict[str, Path]:
        """The workflow's ``$<repository id>/<path>`` values files, each read from its repository at the
        commit the revision names (the branch's head, fetched, when it names none)."""
        from .errors import SlipwayError, describe
        from .render.options import values_ref

        out: dict[str, Path] = {}
        for ref in wf.helm.values_files if wf.helm else []:
            if not ref.startswith("$"):
                continue
            rid, path = values_ref(ref, "helm.values_files")
            try:
                repo = self.store.get_repository(rid)
                sha = values.get(rid) or self.source.fetch(repo)
                where = tmp / rid / sha[:12]
                folder = self.source.materialize(repo, sha, path, where)
            except SlipwayError as e:
                raise ManifestError(f"helm.values_files: values file {ref}: {describe(e)}") from None
            file = folder / Path(path).name
            if not file.is_file():
                raise ManifestError(f"helm.values_files: values file {ref}: {path} is not a file of repository {rid}")
            out[ref] = file
        return out

    @contextlib.contextmanager
    def _chart_fetcher(self) -> Iterator[Fetcher]:
        from .render.charts import Fetcher

        tmp = Path(tempfile.mkdtemp(prefix="slipway-chart-"))
        try:
            yield Fetcher(settings.helm_cache(), self.chart_credentials, tmp, self.chart_repository_registered,
                          self.chart_access)  # fmt: skip
        finally:
            shutil.rmtree(tmp, ignore_errors=True)

    def chart_revision(self, wf: Workflow, repo: Repository) -> str:
        """The revision of the newest chart in the workflow's range: ``<version>@sha256:<digest>``."""
        from .render.chartsource import resolve

        with self._chart_fetcher() as fetcher:
            return resolve(fetcher, repo.url, str(wf.chart), wf.chart_version or "*",
                           f"repository {repo.id}: chart {wf.chart}")  # fmt: skip

    def chart_heads(self, repo: Repository, workflows: list[Workflow]) -> dict[str, str]:
        """For a repository of type helm, each of ``workflows``' newest chart in range: what the controller
        follows as it follows a branch's head (one read of the index or tag list per chart)."""
        out: dict[str, str] = {}
        seen: dict[tuple[str, str], str] = {}
        for wf in workflows:
            key = (str(wf.chart), wf.chart_version or "*")
            if key not in seen:
                seen[key] = self.chart_revision(wf, repo)
            out[wf.id] = seen[key]
        return out

    @staticmethod
    def followed_head(wf: Workflow, chart: bool, states: dict[str, Any]) -> tuple[str, tuple[int, ...]] | None:
        """What the controller brings ``wf`` to, from its repositories' checks (:func:`.workflowrev.followed_head`)."""
        from .workflowrev import followed_head

        return followed_head(wf, chart, states)

    def remote_head(self, repo: Repository) -> str:
        """A Git repository's branch head; for a chart repository, a digest of what its workflows'
        ranges resolve to (it changes when a new release in one of them appears)."""
        if repo.type != "helm":
            return super().remote_head(repo)
        import hashlib
        import json

        heads = self.chart_heads(repo, [wf for wf in self.store.list_workflows() if wf.repository == repo.id])
        return "sha256:" + hashlib.sha256(json.dumps(heads, sort_keys=True).encode()).hexdigest()

    def chart_access(self, url: str) -> Any:
        """How the registry of an ``oci://`` URL is reached: the login, plain HTTP and CA file of the
        registered repository of type helm whose URL is the longest prefix of it."""
        from .render.oci import Access

        best = self._chart_repository(url)
        if best is None:
            return Access()
        return Access(self.chart_credentials(url), best.plain_http, best.ca_file)

    def _chart_repository(self, url: str) -> Repository | None:
        url = url.rstrip("/")
        best: Repository | None = None
        for repo in self.store.list_repositories():
            base = repo.url.rstrip("/")
            matches = repo.type == "helm" and (url == base or url.startswith(base + "/"))
            if matches and (best is None or len(base) > len(best.url.rstrip("/"))):
                best = repo
        return best

    def _render_context(self, wf: Workflow, cancel: threading.Event | None = None) -> RenderContext:
        from .render import RenderContext
        from .render.options import render_options

        return RenderContext(
            workflow_id=wf.id,
            namespace=wf.destination.namespace,
            options=render_options(wf.id, wf.helm, wf.jsonnet),
            cache_dir=settings.helm_cache(),
            credentials=self.chart_credentials,
            discover=lambda: self.kube_for(wf).discovery.capabilities(),
            cancel=cancel,
            # Trust, decided here for every front: never by the workflow's own configuration.
            allow_remote=settings.kustomize_allow_remote(wf.id),
            chart_repository_allowed=self.chart_repository_registered,
            chart_access=self.chart_access,
        )

    def _render_root(self, wf: Workflow, root: Path, context: RenderContext) -> list[Manifest]:
        from . import render as render_stage
        from .render.sops import still_encrypted

        manifests = render_stage.render(root, label=wf.target_path, context=context)
        for m in manifests:
            if still_encrypted(m.obj):
                raise DecryptionError(
                    f"{m.source}: is still encrypted with SOPS; a file it comes from could not be decrypted "
                    "with the workflow's keys",
                    file=m.source,
                )
        manifests = self._substitute(wf, manifests)
        if not manifests and not wf.sync_policy.allow_empty:
            raise ManifestError(
                f"target_path {wf.target_path or '/'!r} renders no objects; it holds {render_stage.contents(root)}",
                hint="slipway renders *.yaml, *.yml and *.json files, kustomizations, Helm charts and "
                "Jsonnet; set sync_policy.allow_empty = true if an empty path is meant",
            )
        return manifests

    def render_local(
        self, wf: Workflow, directory: str | Path, cancel: threading.Event | None = None
    ) -> list[Manifest]:
        """Render a directory on disk as the workflow's path (``diff --local``), with its renderer options.

        The directory is copied as a checkout would write it (:mod:`slipway.source.localdir`): a
        symbolic link out of it is refused. A render that reads the rest of the repository gets
        the work tree the directory sits in, when the directory is the workflow's path in it.
        """
        from . import render as render_stage
        from .source.localdir import copy_tree, work_tree_of

        where = f"local directory {directory}"
        context = self._render_context(wf, cancel)
        with _scratch(where) as tmp:
            root = copy_tree(Path(directory), tmp / "path", where)
            if render_stage.needs_whole_repository(root, context):
                top = work_tree_of(Path(directory))
                inside = top is not None and Path(directory).resolve() == (top / wf.target_path).resolve()
                if top is None or not inside:
                    raise ManifestError(
                        "the render reads files outside the directory (Jsonnet libraries or a chart dependency "
                        "by path)",
                        hint=f"give the directory that is target_path {wf.target_path or '/'!r} of a work tree "
                        "of the repository",
                    )
                whole = copy_tree(top, tmp / "repo", where)
                root = whole / wf.target_path if wf.target_path else whole
                context.repository_root = whole
            self._decrypt(wf, root, context)
            return self._render_root(wf, root, context)

    def _decrypt(self, wf: Workflow, root: Path, context: RenderContext) -> None:
        """SOPS files decrypted in the scratch copy (:mod:`slipway.render.sops`): the target path always,
        the rest of a whole checkout too (kustomize bases, values files elsewhere)."""
        from .render.sops import decrypt_tree

        decrypt_tree(root, wf.target_path, wf.decryption, context)
        whole = context.repository_root
        if whole is not None and root != whole:
            # Files elsewhere may be another team's, with other keys: those that the render reads
            # and that stay encrypted are refused after it.
            decrypt_tree(whole, "", wf.decryption, context, skip=root, strict=False)

    def _substitute(self, wf: Workflow, manifests: list[Manifest]) -> list[Manifest]:
        """Flux's postBuild: variables from the destination's ConfigMaps and Secrets, then the workflow's own."""
        from .render.substitute import substitute_all, variables

        if wf.post_build is None:
            return manifests
        kube = self.kube_for(wf) if wf.post_build.substitute_from else None
        namespace = wf.destination.namespace

        def read(source: Any) -> dict[str, str] | None:
            from .kube.configdata import config_values

            assert kube is not None
            return config_values(kube, source.kind, namespace, source.name)

        return substitute_all(manifests, variables(wf.post_build, read))

    def chart_repository_registered(self, url: str) -> bool:
        """True when a registered repository of type helm holds ``url`` (its URL a prefix, on a path boundary)."""
        url = url.rstrip("/")
        for repo in self.store.list_repositories():
            base = repo.url.rstrip("/")
            if repo.type == "helm" and (url == base or url.startswith(base + "/")):
                return True
        return False

    def chart_credentials(self, url: str) -> tuple[str, str] | None:
        """The login for a chart repository: that of the registered repository of type helm whose URL is
        the longest prefix of ``url`` (on a path boundary); None when there is none or it has no credentials."""
        best = self._chart_repository(url)
        creds = best.credentials if best is not None else None
        secret = creds and (creds.password or creds.token)
        return (creds.username or "", secret) if creds and secret else None


@contextlib.contextmanager
def _scratch(where: str) -> Iterator[Path]:
    """A scratch directory for one render, removed after; a manifest error names ``where`` it came from."""
    tmp = Path(tempfile.mkdtemp(prefix="slipway-render-"))
    try:
        yield tmp
    except ManifestError as e:
        if isinstance(e, DecryptionError):
            raise  # it names the file; it becomes a conflict of the plan (:func:`undecryptable`)
        raise ManifestError(f"{where}: {e.message}", hint=e.hint) from None
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def undecryptable(workflow_id: str, revision: str | None, error: DecryptionError) -> Plan:
    """The plan of a render refused for a SOPS file it cannot decrypt: one blocking validation conflict
    naming the file, no change (nothing is applied, nothing pruned)."""
    from .durations import rfc3339
    from .plan.model import Plan
    from .results import Conflict

    conflict = Conflict(
        resource=f"file {error.file}",
        namespace=None,
        type="validation",
        description=error.message,
        suggestions=[error.hint or "Give the workflow the key the file was encrypted for, or encrypt it again"],
    )
    return Plan(workflow_id, revision, rfc3339(), conflicts=[conflict])
