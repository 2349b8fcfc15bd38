"""Workspace-wide pytest configuration: one thread, as on a busy 2-core machine."""

from papershelf.core.testing import limit_threads

limit_threads(1)
