"""``voxserve``: manage API clients and keys in the store the service uses (same settings).

    voxserve clients create --name NAME [--tenant T] [--scopes tts,voices:write] [--rpm N]
                            [--concurrent-streams N] [--audio-seconds-per-day N]
    voxserve clients list
    voxserve clients revoke CLIENT_ID
    voxserve keys create --client CLIENT_ID
    voxserve keys revoke KEY_ID
    voxserve signing-keys rotate

Secrets and keys are printed once, as JSON; the store keeps only their argon2 hashes.
Settings come from VOXSERVE_* variables or the YAML file named by VOXSERVE_CONFIG, as for the service.
"""

from __future__ import annotations

import argparse
import json
import sys

from storage import open_store
from storage.clients import DEFAULT_SCOPES, DEFAULT_TENANT, ClientStore, limits_from
from tts_engine.errors import VoxServeError
from tts_engine.settings import Settings


def parser() -> argparse.ArgumentParser:
    top = argparse.ArgumentParser(prog="voxserve", description="Manage VoxServe API clients and keys.")
    groups = top.add_subparsers(dest="group", required=True)

    clients = groups.add_parser("clients", help="API clients (a tenant, scopes and limits each)")
    ops = clients.add_subparsers(dest="op", required=True)
    create = ops.add_parser("create", help="create a client; prints its id and secret once")
    create.add_argument("--name", required=True)
    create.add_argument("--tenant", default=DEFAULT_TENANT)
    create.add_argument("--scopes", default=",".join(DEFAULT_SCOPES), help="comma-separated: tts,voices:write,admin")
    create.add_argument("--rpm", type=int, help="requests per minute")
    create.add_argument("--concurrent-streams", type=int)
    create.add_argument("--audio-seconds-per-day", type=float)
    ops.add_parser("list", help="all clients (no secrets)")
    revoke = ops.add_parser("revoke", help="revoke a client: its tokens and keys stop working")
    revoke.add_argument("client_id")

    keys = groups.add_parser("keys", help="long-lived API keys of a client")
    key_ops = keys.add_subparsers(dest="op", required=True)
    key_create = key_ops.add_parser("create", help="create an API key; prints it once")
    key_create.add_argument("--client", required=True, dest="client_id")
    key_revoke = key_ops.add_parser("revoke", help="revoke one API key")
    key_revoke.add_argument("key_id")

    signing = groups.add_parser("signing-keys", help="keys that sign access tokens")
    signing_ops = signing.add_subparsers(dest="op", required=True)
    signing_ops.add_parser("rotate", help="add a new active key; tokens signed by older ones stay valid")
    return top


def run(args: argparse.Namespace, clients: ClientStore, settings: Settings) -> dict | list:
    action = (args.group, args.op)
    if action == ("clients", "create"):
        limits = limits_from(settings, args.rpm, args.concurrent_streams, args.audio_seconds_per_day)
        scopes = [s.strip() for s in args.scopes.split(",") if s.strip()]
        record, secret = clients.create_client(args.name, args.tenant, scopes, limits)
        return {"client_id": record.client_id, "client_secret": secret, "tenant": record.tenant}
    if action == ("clients", "list"):
        return [c.public() for c in clients.list_clients()]
    if action == ("clients", "revoke"):
        return clients.revoke_client(args.client_id).public()
    if action == ("keys", "create"):
        record, key = clients.create_key(args.client_id)
        return {"key_id": record.key_id, "client_id": record.client_id, "api_key": key}
    if action == ("keys", "revoke"):
        record = clients.revoke_key(args.key_id)
        return {"key_id": record.key_id, "client_id": record.client_id, "revoked_at": record.revoked_at}
    if action == ("signing-keys", "rotate"):
        return {"active_kid": clients.rotate_signing_key()}
    raise AssertionError(action)  # argparse allows nothing else


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    try:
        settings = Settings()
        result = run(args, ClientStore(open_store(settings)), settings)
    except VoxServeError as exc:
        print(f"voxserve: {exc.message}", file=sys.stderr)
        return 2
    except ValueError as exc:  # settings or store URL
        print(f"voxserve: {exc}", file=sys.stderr)
        return 2
    print(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
