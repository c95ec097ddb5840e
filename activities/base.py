"""What every activity class shares: the one list of its activities.

A class names its activity methods once, in step order (`ACTIVITIES`); worker.py registers
`activities()` of the instance it builds, and tests that run a workflow against mocks
take the names from `names()`, so a renamed or added step cannot be missed by either.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, ClassVar

from temporalio import activity


class ActivityClass:
    ACTIVITIES: ClassVar[tuple[Callable[..., Any], ...]] = ()

    def activities(self) -> list[Callable[..., Any]]:
        """The bound methods to register (a subclass's overrides included)."""
        return [getattr(self, f.__name__) for f in self.ACTIVITIES]

    @classmethod
    def names(cls) -> list[str]:
        """The activity type names, as the workflows schedule them."""
        names = [activity._Definition.must_from_callable(f).name for f in cls.ACTIVITIES]
        assert all(names), f"{cls.__name__}: an activity without a name (dynamic)"
        return [n for n in names if n]
