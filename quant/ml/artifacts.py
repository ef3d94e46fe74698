"""Model bundles: one JSON file with everything needed to use a trained model (no Django).

A bundle holds the model kind and its fitted state (a LightGBM model string or logistic
coefficients: no pickle), the feature-set definition and version, the label definition, the
ordered feature names, the params, the symbols, timeframe and training range::

    {"format": "quant-model-bundle", "format_version": 1,
     "payload_sha256": "<sha256 of the canonical JSON of payload>",
     "payload": {"kind": ..., "model": {...}, "feature_set": {...}, ...}}

``load_bundle`` refuses a file whose payload no longer matches ``payload_sha256`` (edited or
truncated after it was saved) and, when given ``sha256``, a file whose bytes do not hash to
it (the ``file_hash`` stored on its ``ModelArtifact``).
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from quant.errors import NotFoundError, ValidationError
from quant.ml.base import TradingModel, model_class

BUNDLE_FORMAT = "quant-model-bundle"
BUNDLE_FORMAT_VERSION = 1


@dataclass(frozen=True)
class ModelBundle:
    kind: str
    model_state: dict[str, Any]
    feature_names: tuple[str, ...]
    feature_set: dict[str, Any]  # FeatureSetDefinition.as_dict()
    feature_set_version: str
    label: dict[str, Any]  # LabelDefinition.as_dict()
    params: dict[str, Any]
    symbols: tuple[str, ...] = ()
    timeframe: str = "1Day"
    train_start: str | None = None  # ISO 8601
    train_end: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def from_model(cls, model: TradingModel, **fields: Any) -> ModelBundle:
        return cls(
            kind=model.kind,
            model_state=model.state(),
            feature_names=model.feature_names,
            params=model.params.model_dump(mode="json"),
            **fields,
        )

    def model(self) -> TradingModel:
        """The fitted model, rebuilt from its saved state."""
        return model_class(self.kind).from_state(
            self.model_state, feature_names=self.feature_names, params=self.params
        )

    def payload(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "model": self.model_state,
            "feature_names": list(self.feature_names),
            "feature_set": self.feature_set,
            "feature_set_version": self.feature_set_version,
            "label": self.label,
            "params": self.params,
            "symbols": list(self.symbols),
            "timeframe": self.timeframe,
            "train_start": self.train_start,
            "train_end": self.train_end,
            "extra": self.extra,
        }

    def to_bytes(self) -> bytes:
        payload = self.payload()
        document = {
            "format": BUNDLE_FORMAT,
            "format_version": BUNDLE_FORMAT_VERSION,
            "payload_sha256": _payload_hash(payload),
            "payload": payload,
        }
        return json.dumps(document, indent=1, sort_keys=True).encode()

    @classmethod
    def from_bytes(
        cls, data: bytes, *, source: str = "bundle", sha256: str | None = None
    ) -> ModelBundle:
        """Parse and verify a bundle; every refusal names ``source`` and the problem."""
        if sha256 is not None and file_hash(data) != sha256.lower():
            raise ValidationError(
                f"model bundle {source}: file hash {file_hash(data)[:12]}… does not match the "
                f"expected {sha256[:12]}… (the file was changed or replaced)"
            )
        try:
            document = json.loads(data)
        except (UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise ValidationError(f"model bundle {source}: not a JSON bundle ({exc})") from None
        if not isinstance(document, dict) or document.get("format") != BUNDLE_FORMAT:
            raise ValidationError(f"model bundle {source}: not a {BUNDLE_FORMAT} file")
        if document.get("format_version") != BUNDLE_FORMAT_VERSION:
            raise ValidationError(
                f"model bundle {source}: format version {document.get('format_version')!r} is "
                f"not supported (this code reads version {BUNDLE_FORMAT_VERSION})"
            )
        payload = document.get("payload")
        if not isinstance(payload, dict) or _payload_hash(payload) != document.get(
            "payload_sha256"
        ):
            raise ValidationError(
                f"model bundle {source}: content hash mismatch: the file was changed after it "
                "was saved; refusing to load it"
            )
        try:
            return cls(
                kind=str(payload["kind"]),
                model_state=dict(payload["model"]),
                feature_names=tuple(str(n) for n in payload["feature_names"]),
                feature_set=dict(payload["feature_set"]),
                feature_set_version=str(payload["feature_set_version"]),
                label=dict(payload["label"]),
                params=dict(payload["params"]),
                symbols=tuple(payload.get("symbols") or ()),
                timeframe=str(payload.get("timeframe") or "1Day"),
                train_start=payload.get("train_start"),
                train_end=payload.get("train_end"),
                extra=dict(payload.get("extra") or {}),
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise ValidationError(f"model bundle {source}: missing or bad field {exc}") from None


def file_hash(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def load_bundle(name_or_path: str | Path, *, sha256: str | None = None) -> ModelBundle:
    """Read a bundle from a file path, or else by name from the installed store (Django's
    default storage in the platform), and verify it."""
    data, source = read_bundle_bytes(name_or_path)
    return ModelBundle.from_bytes(data, source=source, sha256=sha256)


def read_bundle_bytes(name_or_path: str | Path) -> tuple[bytes, str]:
    """The file's bytes and a name for messages. A path on disk wins over a storage name."""
    path = Path(name_or_path)
    if path.is_file():
        try:
            return path.read_bytes(), str(path)
        except OSError as exc:
            raise ValidationError(f"model bundle {path}: cannot read it ({exc.strerror})") from None
    name = str(name_or_path)
    # storage names are relative and stay inside the storage: a path that is neither a file
    # nor such a name is simply not found
    storage = None if path.is_absolute() or ".." in path.parts else _store
    if storage is not None and storage.exists(name):
        with storage.open(name, "rb") as handle:
            return handle.read(), f"storage:{name}"
    where = "no such file" + (" or storage name" if storage is not None else "")
    raise NotFoundError(f"model bundle {name!r}: {where}")


class BundleStore(Protocol):
    """Where trained bundles are kept by name (Django's default storage, in the platform)."""

    def exists(self, name: str) -> bool: ...

    def open(self, name: str, mode: str = "rb") -> Any: ...


_store: BundleStore | None = None


def bundle_store_install(store: BundleStore | None) -> None:
    """Name the store that ``load_bundle`` reads names from (the research app installs
    Django's default storage at start-up; plain scripts and the core's tests have none)."""
    global _store
    _store = store


def _payload_hash(payload: Any) -> str:
    canonical = json.dumps(payload, sort_keys=True, separators=(",", ":"), allow_nan=False)
    return hashlib.sha256(canonical.encode()).hexdigest()
