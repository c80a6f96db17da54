#!/usr/bin/env python3
"""Places an order through the gateway over ZeroMQ, in the erp/2 wire format (docs/wire-format.md:
one frame, a small binary header, a JSON body), with CURVE, then sends the same request again
with the same idempotency key and reads the order back: a client in another language, with the
test keys of fixtures/.

    pip install pyzmq
    .build/debug/erp up                                  # in another terminal
    python3 examples/python/place_order.py shop_malmo prod_01

The topology must admit this client's public key: fixtures/topology.yaml lists `example-client`
under security.clients, and fixtures/keys has its pair (made by `erp keys generate`). A client
key may call the gateway's and the event bus's methods; any other service answers `forbidden`.
"""
import json
import os
import struct
import sys
import time

import zmq

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..")
# The key pairs: this client's and the gateway's public key (another topology's: ERP_KEYS_DIR).
KEYS = os.environ.get("ERP_KEYS_DIR", os.path.join(ROOT, "fixtures", "keys"))


def read_key(name, ext):
    with open(os.path.join(KEYS, f"{name}.{ext}")) as f:
        return f.read().strip().encode()


def field(text):
    """A header string: its UTF-8 length in two bytes (little-endian), then the bytes."""
    data = text.encode()
    return struct.pack("<H", len(data)) + data


def request_frame(call_id, method, caller, deadline_ns, correlation_id, body, idempotency_key=None):
    """An erp/2 request: "erp", version 2, kind 1 (request), flags (bit 0: an idempotency key
    follows), the header's size, the call id, the absolute deadline in nanoseconds since the
    Unix epoch, the strings; then the body's JSON."""
    fields = field(method) + field(caller) + field(correlation_id)
    flags = 0
    if idempotency_key is not None:
        fields += field(idempotency_key)
        flags |= 1
    header_size = 24 + len(fields)
    return (b"erp" + bytes([2, 1, flags]) + struct.pack("<HQq", header_size, call_id, deadline_ns)
            + fields + json.dumps(body).encode())


def read_reply(frame, call_id):
    """An erp/2 reply: the body is the response's JSON, or the error's when flag bit 0 is set."""
    if frame[:4] != b"erp\x02" or frame[4] != 2:
        raise SystemExit(f"not an erp/2 reply: {frame[:16]!r}")
    flags = frame[5]
    header_size, reply_call_id = struct.unpack_from("<HQ", frame, 6)
    assert reply_call_id == call_id, (reply_call_id, call_id)
    body = json.loads(frame[header_size:])
    return {"error": body} if flags & 1 else body


def connect(endpoint, server):
    socket = zmq.Context.instance().socket(zmq.DEALER)
    socket.setsockopt(zmq.LINGER, 0)
    # CURVE client: our pair, and the server's public key.
    socket.curve_secretkey = read_key("example-client", "key")
    socket.curve_publickey = read_key("example-client", "pub")
    socket.curve_serverkey = read_key(server, "pub")
    socket.connect(endpoint)
    return socket


def call(socket, call_id, method, body, idempotency_key=None, timeout_ms=2000):
    deadline_ns = time.time_ns() + timeout_ms * 1_000_000
    socket.send(request_frame(call_id, method, "example-client", deadline_ns, f"corr_python_{call_id}", body,
                              idempotency_key))
    if not socket.poll(timeout_ms):
        raise SystemExit(f"no answer within {timeout_ms} ms "
                         "(is erp up running, and does the topology admit example-client?)")
    return read_reply(socket.recv(), call_id)


if __name__ == "__main__":
    shop = sys.argv[1] if len(sys.argv) > 1 else "shop_malmo"
    product = sys.argv[2] if len(sys.argv) > 2 else "prod_01"
    endpoint = os.environ.get("ERP_GATEWAY_ENDPOINT", "tcp://127.0.0.1:7107")
    gateway = connect(endpoint, "gateway")
    order = {"userId": "user_python", "shopId": shop, "items": [{"productId": product, "quantity": 1}]}
    key = f"python-{time.time_ns()}"
    placed = call(gateway, 1, "gateway.placeOrder", order, idempotency_key=key)
    print("placed:", json.dumps(placed))
    again = call(gateway, 2, "gateway.placeOrder", order, idempotency_key=key)
    print("same key again:", json.dumps(again))
    if "orderId" in placed:
        print("read back:", json.dumps(call(gateway, 3, "gateway.getOrder", {"orderId": placed["orderId"]})))
    gateway.close()
