"""What a running app holds: its settings, its store, its analysis slots and key cache."""

from __future__ import annotations

from dataclasses import dataclass, field

from mien.service.auth import KeyCache
from mien.service.config import ServiceConfig
from mien.service.faults import StoreErrors
from mien.service.slots import SlotPool
from mien.service.store import Store


@dataclass
class AppState:
    config: ServiceConfig
    store: Store
    slots: SlotPool
    keys: KeyCache = field(default_factory=KeyCache)
    store_errors: StoreErrors = field(default_factory=StoreErrors)
