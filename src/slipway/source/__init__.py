"""The source stage: Git mirrors, revisions and the files of one path at one revision."""

from .git import GitSource, clean_target_path, redact_url

__all__ = ["GitSource", "clean_target_path", "redact_url"]
