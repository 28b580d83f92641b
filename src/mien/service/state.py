"""What a running app holds: its settings, its store, its analysis slots and key cache.

Routes receive it typed through the :data:`State` dependency, never as ``request.app.state``'s
``Any``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Annotated

from fastapi import Depends, Request

from mien.service.auth import KeyCache
from mien.service.config import ServiceConfig
from mien.service.faults import StoreErrors
from mien.service.passwords import SignInGuard
from mien.service.slots import SlotPool
from mien.service.store import Store


@dataclass
class AppState:
    config: ServiceConfig
    store: Store
    slots: SlotPool
    keys: KeyCache = field(default_factory=KeyCache)
    store_errors: StoreErrors = field(default_factory=StoreErrors)
    sign_ins: SignInGuard = field(default_factory=SignInGuard)


def app_state(request: Request) -> AppState:
    """The state :func:`mien.service.app.create_app` set up for this app."""
    st: AppState = request.app.state.mien
    return st


#: A route parameter ``st: State`` receives the app's :class:`AppState`.
State = Annotated[AppState, Depends(app_state)]
