"""The exceptions cosmoscope raises. Each message says what was tried and what to do next."""

from __future__ import annotations

import difflib
from collections.abc import Iterable


class CosmoscopeError(Exception):
    """Base class of every error cosmoscope raises on purpose."""


class UnknownNameError(CosmoscopeError, KeyError, ValueError):
    """A table, column, field or option name that does not exist; lists the valid ones."""

    def __init__(self, kind: str, name: str, valid: Iterable[str]):
        self.kind, self.name, self.valid = kind, name, sorted(valid)
        close = difflib.get_close_matches(str(name), self.valid, n=1)
        hint = f" Did you mean {close[0]!r}?" if close else ""
        super().__init__(f"unknown {kind} {name!r}.{hint} Valid names: {', '.join(self.valid)}")

    def __str__(self) -> str:  # KeyError would otherwise quote the message
        return self.args[0]


class CatalogOpenError(CosmoscopeError):
    """The catalog cannot be opened or created where it was asked to be."""


class CatalogNotFoundError(CatalogOpenError):
    """No catalog where one was expected, and the caller did not ask to create one (a mistyped
    path, a VAST schema never created)."""

    @classmethod
    def at(cls, where: str) -> CatalogNotFoundError:
        return cls(f"there is no catalog at {where} yet; check the path for a typo, or create one there with "
                   "`cosmoscope ingest DIR` (or `cosmoscope demo`)")


class SchemaError(CosmoscopeError):
    """The stored catalog's layout is not one this release can use (newer, or foreign)."""


class StoreError(CosmoscopeError):
    """The store refused or failed an operation; nothing of that operation was applied."""


class TransactionAbortedError(StoreError):
    """The store ended a transaction without applying any of it; the same work, run again
    (reading afresh), is safe."""


class ConflictError(TransactionAbortedError):
    """Another writer changed the same rows at the same time."""


class TransactionLostError(TransactionAbortedError):
    """The store lost the transaction: it restarted, or the transaction timed out."""


class InvalidArgumentError(CosmoscopeError, ValueError):
    """An argument has a value cosmoscope cannot use."""


class DatasetNotFoundError(CosmoscopeError, LookupError):
    """No dataset with the given id is in the catalog."""


class SkyInputError(InvalidArgumentError):
    """A position, radius, region or target name that cannot be searched (a declination beyond
    ±90°, a radius of 0, a name nobody knows); the HTTP API answers 400."""
