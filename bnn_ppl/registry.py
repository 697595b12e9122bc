"""One registry mechanism for every named thing (activations, priors, likelihoods, engines)."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Generic, TypeVar

from bnn_ppl.errors import SpecError

T = TypeVar("T")

__all__ = ["Registry", "defined_in_bnn_ppl"]


def defined_in_bnn_ppl(obj: object) -> bool:
    """Whether ``obj`` (a class, a function, or an object wrapping one as ``fn``) comes from this package."""
    fn = getattr(obj, "fn", None)
    target = fn if callable(fn) else obj
    module = getattr(target, "__module__", None) or type(target).__module__
    return module == "bnn_ppl" or str(module).startswith("bnn_ppl.")


class Registry(Generic[T]):
    """A name -> object mapping whose lookup error lists every valid name.

    Parameters
    ----------
    kind : str
        What the registry holds, used in error messages ("activation", "prior", ...).
    error : type[Exception]
        Exception class raised for unknown names.
    """

    def __init__(self, kind: str, error: type[Exception] = SpecError) -> None:
        self.kind = kind
        self._error = error
        self._items: dict[str, T] = {}

    def register(self, name: str) -> Callable[[T], T]:
        """Decorator registering ``obj`` under ``name``."""

        def decorator(obj: T) -> T:
            self.add(name, obj)
            return obj

        return decorator

    def add(self, name: str, obj: T) -> None:
        """Register ``obj`` under ``name`` (names are unique)."""
        if name in self._items:
            raise ValueError(f"{self.kind} {name!r} is already registered")
        self._items[name] = obj

    def get(self, name: str, field: str | None = None) -> T:
        """Look ``name`` up; unknown names raise an error listing every choice."""
        try:
            return self._items[name]
        except (KeyError, TypeError):
            where = f"The {field!r} field" if field else f"The {self.kind}"
            raise self._error(
                f"{where} must be one of {sorted(self._items)}. Got {name!r} instead."
            ) from None

    def names(self) -> list[str]:
        """Every registered name, sorted."""
        return sorted(self._items)

    def foreign(self) -> list[str]:
        """Names whose object (or, for a wrapper such as an activation, its ``fn``) is defined
        outside bnn_ppl: code the library's own caches cannot vouch for.

        Examples
        --------
        >>> from bnn_ppl.spec import ACTIVATIONS
        >>> ACTIVATIONS.foreign()
        []
        """
        return [name for name, obj in sorted(self._items.items()) if not defined_in_bnn_ppl(obj)]

    def __contains__(self, name: object) -> bool:
        return name in self._items

    def __iter__(self) -> Iterator[str]:
        return iter(self.names())
