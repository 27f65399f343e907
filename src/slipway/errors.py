"""One hierarchy of errors for all of slipway.

Every error carries what it is about (a repository, a file and document, an object) in its
message, so a front can print it as one line. ``retryable`` splits the hierarchy the way a sync
needs it: transient failures (connection errors, 5xx, 409, timeouts) are worth another attempt,
permanent ones (bad input, validation, forbidden) are not. Kubernetes HTTP statuses are mapped to
these types in one place, :func:`slipway.kube.client.error_from_response`.
"""

from __future__ import annotations


class SlipwayError(Exception):
    """Base of every error slipway raises on purpose."""

    retryable = False

    def __init__(self, message: str, *, hint: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint

    def __str__(self) -> str:
        if self.hint:
            return f"{self.message} ({self.hint})"
        return self.message


class UserError(SlipwayError):
    """The caller asked for something invalid; retrying the same request cannot help."""


class ConfigError(UserError):
    """A configuration table has an unknown key, a wrong type or a bad value."""


class NotPermitted(UserError):
    """The caller's role does not allow what it asked (the API answers 403); nothing was changed."""


class NotFoundError(UserError):
    """A repository, workflow or sync id that slipway does not know."""


class ManifestError(UserError):
    """A manifest cannot be read: names the file and the document index."""


class DecryptionError(ManifestError):
    """A SOPS file that cannot be decrypted: the plan gets a blocking validation conflict naming it."""

    def __init__(self, message: str, *, file: str, hint: str | None = None) -> None:
        super().__init__(message, hint=hint)
        self.file = file


class BuildError(SlipwayError):
    """Building a local component failed, or the toolchain for it is missing."""


class ClusterError(SlipwayError):
    """The local control plane could not be started or reached."""


class SourceError(SlipwayError):
    """Git could not give us the revision or the files we asked for."""


class SourceAuthError(SourceError):
    """The Git server refused the credentials."""


class HostKeyError(SourceError):
    """The SSH host key is unknown or changed."""


class TransientSourceError(SourceError):
    retryable = True


class KubeError(SlipwayError):
    """The API server said no, or could not be reached."""

    def __init__(
        self,
        message: str,
        *,
        status: int | None = None,
        reason: str | None = None,
        hint: str | None = None,
    ) -> None:
        super().__init__(message, hint=hint)
        self.status = status
        self.reason = reason


class KubeTransientError(KubeError):
    """Connection errors, timeouts, 409 conflicts, 429 and 5xx: worth another try."""

    retryable = True


class KubeNotFound(KubeError):
    pass


class KubeInvalid(KubeError):
    """The server rejected the object: schema, immutable field, unknown kind."""


class KubeForbidden(KubeError):
    pass


class SyncInProgress(SlipwayError):
    """Another caller is syncing this workflow right now."""

    retryable = True


class HeldBack(SlipwayError):
    """An automatic sync did not start: a rollback holds the workflow at the revision it restored."""


class Cancelled(SlipwayError):
    """The operation was cancelled (stop_auto_sync, SIGINT, SIGTERM)."""


class SyncFailed(SlipwayError):
    """A stage of a sync or rollback failed; the message says which and why."""


class Refused(SyncFailed):
    """A sync or rollback refused before it applied anything (a conflict, a plan other than the one
    approved, an empty render): recorded as its own outcome, never as a failed sync."""


class HookError(SyncFailed):
    """A pre- or post-sync hook failed or timed out."""


def describe(exc: BaseException) -> str:
    """One line for a user: our messages as they are, anything else with its type."""
    if isinstance(exc, SlipwayError):
        return str(exc)
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[0] if text else ''}".rstrip(": ")
