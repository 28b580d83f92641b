"""What a running app holds: its settings, its store, its analyzers and key cache."""

from __future__ import annotations

import os
import threading
from dataclasses import dataclass, field

from mien.service.analysis import AnalyzerCache
from mien.service.auth import KeyCache
from mien.service.config import ServiceConfig
from mien.service.faults import StoreErrors
from mien.service.store import Store


@dataclass
class AppState:
    config: ServiceConfig
    store: Store
    analyzers: AnalyzerCache
    keys: KeyCache = field(default_factory=KeyCache)
    store_errors: StoreErrors = field(default_factory=StoreErrors)
    analysis_slots: threading.BoundedSemaphore = field(init=False)

    def __post_init__(self) -> None:
        n = self.config.max_concurrent_analyses or os.cpu_count() or 1
        self.analysis_slots = threading.BoundedSemaphore(n)
