#!/usr/bin/env python3
"""A device speaking the device protocol (docs/device-protocol.md) to the IoT gateway of
`erp up`, with a CURVE key of its own from the device registry (fixtures/device-keys).

    pip install pyzmq
    .build/debug/erp up                                            # in another terminal
    python3 examples/python/device.py device_malmo_01              # three heartbeats and a restock
    python3 examples/python/device.py device_malmo_01 --claim device_malmo_02   # refused: key_mismatch

It reports its status with a growing sequence (starting after the current time in milliseconds,
so a rerun is never stale), then a restock delivery of 5 units of prod_01, and prints each answer.
"""
import json
import os
import sys
import time

import zmq

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..")
ENDPOINT = os.environ.get("ERP_DEVICE_ENDPOINT", "tcp://127.0.0.1:7120")
VERSION = b"erp-device/1"


def read(path):
    with open(os.path.join(ROOT, path)) as f:
        return f.read().strip().encode()


def main():
    if len(sys.argv) < 2:
        sys.exit(__doc__)
    device = sys.argv[1]
    claimed = sys.argv[sys.argv.index("--claim") + 1] if "--claim" in sys.argv else device
    socket = zmq.Context.instance().socket(zmq.DEALER)
    socket.setsockopt(zmq.LINGER, 0)
    # Our own pair from the registry, and the IoT gateway's public key.
    socket.curve_secretkey = read(f"fixtures/device-keys/{device}.key")
    socket.curve_publickey = read(f"fixtures/device-keys/{device}.pub")
    socket.curve_serverkey = read("fixtures/keys/iot-gateway.pub")
    socket.connect(ENDPOINT)
    poller = zmq.Poller()
    poller.register(socket, zmq.POLLIN)

    def send(message):
        socket.send_multipart([VERSION, json.dumps(message).encode()])
        if not poller.poll(3000):
            print("no answer within 3 s (is erp up running? is this key in the registry?)")
            sys.exit(1)
        version, body = socket.recv_multipart()
        answer = json.loads(body)
        print(f"{message['type']} #{message['sequence']}: {answer}")
        return answer

    sequence = int(time.time() * 1000)
    for status in ["online", "online", "fault"]:
        sequence += 1
        answer = send({"type": "status", "deviceId": claimed, "sequence": sequence, "status": status})
        if not answer["ok"]:
            sys.exit(2)
        time.sleep(0.2)
    sequence += 1
    send({"type": "data", "deviceId": claimed, "sequence": sequence, "dataType": "restock",
          "productId": "prod_01", "quantity": 5})
    # The same sequence again: accepted false (a repeated report is dropped, never applied twice).
    send({"type": "data", "deviceId": claimed, "sequence": sequence, "dataType": "restock",
          "productId": "prod_01", "quantity": 5})


if __name__ == "__main__":
    main()
