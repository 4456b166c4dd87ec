"""moto's server (DynamoDB, SQS, S3, SSM on one port) with DynamoDB's atomic conditional writes.

moto's threaded server checks a write's condition and applies the write without a lock, so under
load two concurrent conditional puts of one item can both succeed (seen: 2 winners of 12 with the
same expected version on a busy 2-core machine, which split one conversation in two). DynamoDB
applies the writes of an item one at a time. This launcher serializes moto's DynamoDB writes (one
lock over the backend's write operations; reads and SQS, whose long polls must not block others,
are left alone), then runs moto_server's own entry point with the same arguments.

    python3 scripts/moto-server.py -H 127.0.0.1 -p 5000
"""

import functools
import sys
import threading

from moto.dynamodb.models import DynamoDBBackend
from moto.server import main

_WRITES = threading.RLock()


def _serialized(method):
    @functools.wraps(method)
    def write(*args, **kwargs):
        with _WRITES:
            return method(*args, **kwargs)

    return write


for _name in ("put_item", "update_item", "delete_item", "transact_write_items", "batch_write_item"):
    setattr(DynamoDBBackend, _name, _serialized(getattr(DynamoDBBackend, _name)))

if __name__ == "__main__":
    main(sys.argv[1:])
