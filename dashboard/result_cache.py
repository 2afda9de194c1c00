"""The shared result cache: one LRU of finished results for every session of the process, and its keys.

Results are keyed by the classifier's identity, the image's hash and the JSON of the core options, and are
never mutated once cached.
"""
from __future__ import annotations

import hashlib
import json
import threading
from collections import OrderedDict
from typing import Any

class ResultCache:
    """A small thread-safe LRU of finished results, shared by every session of the process."""

    def __init__(self, max_entries: int = 48) -> None:
        self.max_entries = max_entries
        self._data: OrderedDict[str, Any] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, key: str) -> Any | None:
        with self._lock:
            if key not in self._data:
                return None
            self._data.move_to_end(key)
            return self._data[key]

    def put(self, key: str, value: Any) -> None:
        with self._lock:
            self._data[key] = value
            self._data.move_to_end(key)
            while len(self._data) > self.max_entries:
                self._data.popitem(last=False)

    def clear(self) -> None:
        with self._lock:
            self._data.clear()

    def __len__(self) -> int:
        return len(self._data)


def digest(data: bytes) -> str:
    """Short content hash of an image or checkpoint file."""
    return hashlib.sha256(data).hexdigest()[:20]


def cache_key(*parts: Any) -> str:
    """A stable key from JSON-able parts (paths and other objects are written as text)."""
    return json.dumps(parts, sort_keys=True, default=str)
