"""Model set-up steps behind ./setup_models.sh: prepare embedded weights, pull Ollama tags, report status."""

from __future__ import annotations

import argparse
import sys

from src.backends import backend_for
from src.backends.embedded import WEIGHTS, assemble, verify_weights
from src.commands import common
from src.errors import UserError
from src.registry import load_config


def prepare_embedded(model_keys: list[str]) -> int:
    config = load_config()
    failed = 0
    for key in model_keys:
        spec = config.model(key)
        if spec.provider != "embedded":
            raise UserError(f"{key} is not an embedded model")
        try:
            path = assemble(spec.model_id, config.cache_dir)
            verify_weights(path, WEIGHTS[spec.model_id], config.cache_dir)
            print(f"embedded {key}: ready ({path.name}, sha256 verified)")
        except UserError as exc:
            print(f"embedded {key}: NOT ready: {exc}", file=sys.stderr)
            failed += 1
    return 1 if failed else 0


def pull_ollama(model_keys: list[str] | None) -> int:
    """Pull every configured Ollama tag that is not present yet (idempotent)."""
    import ollama

    config = load_config()
    keys = model_keys or [k for k, s in config.models.items() if s.provider == "ollama"]
    base = config.ollama_base_url
    client = ollama.Client(host=base)
    try:
        client.list()
    except Exception as exc:  # noqa: BLE001 - any failure means "not reachable"
        print(f"Ollama is not reachable at {base} ({type(exc).__name__}): install it from https://ollama.com and "
              f"start it (`ollama serve`), or set OLLAMA_BASE_URL. Skipping the local Ollama models.", file=sys.stderr)
        return 2
    failed = 0
    for key in keys:
        backend = backend_for(config.model(key), config)
        if backend.spec.provider != "ollama":
            continue
        if not backend.problems():
            print(f"ollama {backend.spec.model_id}: already pulled")
            continue
        print(f"ollama {backend.spec.model_id}: pulling ...", flush=True)
        try:
            last = None
            for part in client.pull(backend.spec.model_id, stream=True):
                status = part.get("status") if isinstance(part, dict) else getattr(part, "status", None)
                if status and status != last:
                    print(f"  {status}", flush=True)
                    last = status
        except Exception as exc:  # noqa: BLE001
            print(f"ollama {backend.spec.model_id}: pull failed: {exc}", file=sys.stderr)
            failed += 1
    return 1 if failed else 0


def status() -> int:
    config = load_config()
    for key, spec in config.models.items():
        problems = backend_for(spec, config).problems()
        state = "ready" if not problems else problems[0]
        print(f"{key:22s} {spec.provider:18s} {state}")
    return 0


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__)
    sub = p.add_subparsers(dest="cmd", required=True)
    e = sub.add_parser("embedded", help="verify/assemble embedded weights")
    e.add_argument("--models", default="smollm2-135m")
    o = sub.add_parser("ollama", help="pull the registered Ollama tags")
    o.add_argument("--models", default=None)
    sub.add_parser("status", help="one line per registered model: ready, or what is missing")
    args = p.parse_args()
    if args.cmd == "embedded":
        return prepare_embedded(common.split_list(args.models))
    if args.cmd == "ollama":
        return pull_ollama(common.split_list(args.models) or None)
    return status()
