#!/usr/bin/env python3
"""Asks the inventory service for a stock level over ZeroMQ, in the erp/1 wire format
(docs/wire-format.md), with CURVE: a client in another language, with the test keys of fixtures/.

    pip install pyzmq
    .build/debug/erp up                                  # in another terminal
    python3 examples/python/check_stock.py shop_malmo prod_01

The topology must admit this client's public key: fixtures/topology.yaml lists `example-client`
under security.clients, and fixtures/keys has its pair (made by `erp keys generate`).
"""
import json
import os
import sys
import time

import zmq

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..")
KEYS = os.path.join(ROOT, "fixtures", "keys")


def read_key(name, ext):
    with open(os.path.join(KEYS, f"{name}.{ext}")) as f:
        return f.read().strip().encode()


def call(endpoint, server, method, body, timeout_ms=2000):
    context = zmq.Context.instance()
    socket = context.socket(zmq.DEALER)
    socket.setsockopt(zmq.LINGER, 0)
    # CURVE client: our pair, and the server's public key.
    socket.curve_secretkey = read_key("example-client", "key")
    socket.curve_publickey = read_key("example-client", "pub")
    socket.curve_serverkey = read_key(server, "pub")
    socket.connect(endpoint)
    header = {
        "callId": 1,
        "method": method,
        "caller": "example-client",
        "deadlineMs": time.time() * 1000 + timeout_ms,
        "correlationId": "corr_python_1",
    }
    socket.send_multipart([b"erp/1", b"request", json.dumps(header).encode(), json.dumps(body).encode()])
    if not socket.poll(timeout_ms):
        raise SystemExit(f"no answer from {server} at {endpoint} within {timeout_ms} ms "
                         "(is it running, and does the topology admit example-client?)")
    version, kind, reply_header, reply_body = socket.recv_multipart()
    assert version == b"erp/1" and kind == b"reply", (version, kind)
    reply = json.loads(reply_header)
    socket.close()
    return json.loads(reply_body) if reply["ok"] else {"error": reply["error"]}


if __name__ == "__main__":
    shop = sys.argv[1] if len(sys.argv) > 1 else "shop_malmo"
    product = sys.argv[2] if len(sys.argv) > 2 else "prod_01"
    endpoint = os.environ.get("ERP_INVENTORY_ENDPOINT", "tcp://127.0.0.1:7103")
    print(json.dumps(call(endpoint, "inventory", "inventory.checkStock", {"shopId": shop, "productId": product})))
