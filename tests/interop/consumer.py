"""The Python reference consumer (the `atproto` package's firehose client) on a
subscribeRepos stream: decodes every frame into the package's models, and
checks each #commit and #sync signature against the key the PLC directory
publishes for the repo.

Prints one JSON line per message, flushed, until stopped (SIGTERM):
  {"seq": 7, "type": "commit", "did": "did:plc:...", "ok": true}
with "ok": false and "why" when a check failed.

  python consumer.py <ws base, e.g. ws://127.0.0.1:2470/xrpc> <plc url> <cursor>
"""

import json
import sys

import libipld
from atproto import CAR, IdResolver, models
from atproto_crypto.verify import verify_signature
from atproto_firehose import FirehoseSubscribeReposClient, parse_subscribe_repos_message

Repos = models.ComAtprotoSyncSubscribeRepos


def emit(**line):
    print(json.dumps(line), flush=True)


def signed_by(resolver, did, car, cid):
    """Whether the commit block `cid` in `car` is signed by `did`'s current key."""
    block = car.blocks.get(cid)
    if block is None:
        return 'commit block missing from the CAR'
    unsigned = {k: v for k, v in block.items() if k != 'sig'}
    key = resolver.did.resolve_atproto_key(did)
    signed = libipld.encode_dag_cbor(unsigned)
    if not verify_signature(key, signed, block['sig']):
        return f'signature does not verify against {key}'
    # The check must be able to fail: the same signature over other bytes.
    if verify_signature(key, signed + b'\0', block['sig']):
        return 'signature check accepted tampered bytes'
    return None


def check(resolver, msg):
    """(type, did, why-not-ok or None) for one decoded message."""
    if isinstance(msg, Repos.Commit):
        car = CAR.from_bytes(msg.blocks)
        why = signed_by(resolver, msg.repo, car, msg.commit)
        for op in msg.ops:
            if why is None and op.action in ('create', 'update') and car.blocks.get(op.cid) is None:
                why = f'record block for {op.path} missing'
        return 'commit', msg.repo, why
    if isinstance(msg, Repos.Sync):
        car = CAR.from_bytes(msg.blocks)
        return 'sync', msg.did, signed_by(resolver, msg.did, car, car.root)
    if isinstance(msg, Repos.Identity):
        return 'identity', msg.did, None
    if isinstance(msg, Repos.Account):
        return 'account', msg.did, None
    return type(msg).__name__, None, 'unexpected message type'


class Client(FirehoseSubscribeReposClient):
    """The package's client, reporting the reconnects it otherwise makes
    silently. It reconnects by design after 30 s without a message (its
    `recv_timeout`), which a quiet test network reaches; any other lost
    connection is a relay dropping a consumer."""

    def _handle_websocket_error_or_stop(self, exception):
        stop = super()._handle_websocket_error_or_stop(exception)
        if not stop:
            idle = isinstance(exception, TimeoutError)
            emit(seq=None, type='reconnect', did=None, ok=idle, why=f'{type(exception).__name__}: {exception}')
        return stop


def main():
    base, plc_url, cursor = sys.argv[1], sys.argv[2], int(sys.argv[3])
    resolver = IdResolver(plc_url=plc_url)
    client = Client(Repos.Params(cursor=cursor), base_uri=base)

    def on_message(message):
        msg = parse_subscribe_repos_message(message)
        # A reconnect resumes after the last message, as a real consumer does.
        client.update_params(Repos.Params(cursor=msg.seq))
        try:
            kind, did, why = check(resolver, msg)
        except Exception as err:  # a check that raised is a failed check
            kind, did, why = type(msg).__name__, None, f'{type(err).__name__}: {err}'
        emit(seq=msg.seq, type=kind, did=did, ok=why is None, why=why)

    def on_error(err):
        emit(seq=None, type='error', did=None, ok=False, why=f'{type(err).__name__}: {err}')

    client.start(on_message, on_error)


if __name__ == '__main__':
    main()
