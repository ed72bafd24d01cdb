"""The input every renderer takes: the parsed resource and its derived timeouts."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from wsfleet_operator import naming
from wsfleet_operator.model import WebSocketService, WebSocketServiceSpec
from wsfleet_operator.timeouts import Timeouts, derive

Manifest = dict[str, Any]


@dataclass(frozen=True)
class Context:
    wss: WebSocketService
    t: Timeouts

    @classmethod
    def of(cls, wss: WebSocketService) -> Context:
        return cls(wss, derive(wss.spec))

    @property
    def spec(self) -> WebSocketServiceSpec:
        return self.wss.spec

    @property
    def name(self) -> str:
        return naming.child_name(self.wss)

    @property
    def namespace(self) -> str:
        return self.wss.metadata.namespace

    def meta(self, name: str | None = None, annotations: dict[str, str] | None = None) -> dict[str, Any]:
        return naming.metadata(self.wss, name or self.name, annotations=annotations)
