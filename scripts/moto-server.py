"""moto's server (DynamoDB, SQS, S3, SSM on one port) with DynamoDB's atomic conditional writes.

moto's threaded server checks a write's condition and applies the write without a lock, so under
load two concurrent conditional puts of one item can both succeed (seen: 2 winners of 12 with the
same expected version on a busy 2-core machine, which split one conversation in two). DynamoDB
applies the writes of an item one at a time. This launcher serializes moto's DynamoDB writes (one
lock over the backend's write operations; reads and SQS, whose long polls must not block others,
are left alone), then runs moto_server's own entry point with the same arguments.

It also names the root element of S3's CompleteMultipartUpload answer as S3 does
(`CompleteMultipartUploadResult`): moto 5.2.1 answers `CompleteMultipartUploadResponse`, which the
Rust SDK refuses (getmoto/moto#10055, fixed in later releases, where this changes nothing).

    python3 scripts/moto-server.py -H 127.0.0.1 -p 5000
"""

import functools
import sys
import threading

from moto.dynamodb.models import DynamoDBBackend
from moto.s3.responses import S3Response
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

_WRONG_ROOT = b"CompleteMultipartUploadResponse"
_S3_ROOT = b"CompleteMultipartUploadResult"


def _s3_root(method):
    @functools.wraps(method)
    def post(*args, **kwargs):
        status, headers, body = method(*args, **kwargs)
        text = body.encode() if isinstance(body, str) else body
        if isinstance(text, bytes) and _WRONG_ROOT in text[:200]:
            body = text.replace(b"<" + _WRONG_ROOT, b"<" + _S3_ROOT, 1).replace(
                b"</" + _WRONG_ROOT + b">", b"</" + _S3_ROOT + b">", 1
            )
            headers = {k: v for k, v in headers.items() if k.lower() != "content-length"}
        return status, headers, body

    return post


S3Response._key_response_post = _s3_root(S3Response._key_response_post)

if __name__ == "__main__":
    main(sys.argv[1:])
