#!/usr/bin/env python3
"""Hostile HTTP requests against a running `erp up` gateway, then a sane order.

Usage: python3 scripts/hostile-http.py [--url http://127.0.0.1:8080] [--key dev-key-change-me]

Every request below is well-formed enough to reach the gateway and absurd, contradictory or
malformed past that: numbers past Int64, 1e400, deep nesting, invalid UTF-8, NUL, lone
surrogates, bodies and headers past the limits, a reused Idempotency-Key with another body,
300 half-open connections. Each must be refused with a 4xx (or the connection closed, for
what is past the size limits), and afterwards /health must answer and a sane order must be
created. Exit status 0 when all of that held, 1 otherwise (each miss is printed), 2 when no
gateway answers /health at the start. A request whose connection is refused is a miss; while
holding the half-open connections the server may refuse further ones (a connection cap).

It does not see the services themselves: compare their process ids before and after (for
example `pgrep -af 'erp serve'`), or read `erp up`'s output for restarts.
"""
import argparse
import json
import socket
import sys
import time
from urllib.parse import urlparse


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--url", default="http://127.0.0.1:8080", help="the gateway (default %(default)s)")
    parser.add_argument("--key", default="dev-key-change-me", help="an API key the gateway admits (default %(default)s)")
    args = parser.parse_args()
    url = urlparse(args.url)
    host, port, key = url.hostname or "127.0.0.1", url.port or 80, args.key

    def raw(data, timeout=5):
        """Sends `data` on a new connection and returns what came back (the status line is what
        matters), with a note when the peer reset the connection or went quiet."""
        out = b""
        try:
            s = socket.create_connection((host, port), timeout=timeout)
        except OSError as error:  # refused, reset or timed out before a connection: no answer
            return b" [connect: " + type(error).__name__.encode() + b"]"
        with s:
            try:
                s.sendall(data)
                while len(out) < 1 << 20:
                    chunk = s.recv(65536)
                    if not chunk:
                        break
                    out += chunk
            except (socket.timeout, ConnectionResetError, BrokenPipeError) as error:
                out += b" [" + type(error).__name__.encode() + b"]"
        return out

    def request(method, path, body=b"", headers=None, with_key=True):
        fields = {"Host": host, "Connection": "close"}
        if with_key:
            fields["X-API-Key"] = key
        if body:
            fields["Content-Type"] = "application/json"
            fields["Content-Length"] = str(len(body))
        fields.update(headers or {})
        head = f"{method} {path} HTTP/1.1\r\n" + "".join(f"{k}: {v}\r\n" for k, v in fields.items()) + "\r\n"
        return raw(head.encode("latin-1") + body)

    def status(answer):
        line = answer.split(b"\r\n", 1)[0].decode("latin-1", "replace")
        return int(line.split()[1]) if line.startswith("HTTP/1.1 ") and len(line.split()) > 1 else None

    def order(items, shop="shop_malmo"):
        return json.dumps({"userId": "user_001", "shopId": shop, "items": items}).encode()

    item = lambda quantity, product="prod_01": {"productId": product, "quantity": quantity}
    base = b'{"userId":"user_001","shopId":"shop_malmo","items":[{"productId":"prod_01","quantity":%s}]}'
    campaign = b'{"name":"x","productIds":["prod_01"],"percentOff":%s,"lastsSeconds":%s}'
    run = str(int(time.time() * 1000))
    # (name, method, path, body, whether a closed connection without an answer is acceptable)
    cases = [
        ("quantity Int64.max", "POST", "/orders", order([item(2**63 - 1)]), False),
        ("quantity 2^64", "POST", "/orders", order([item(2**64)]), False),
        ("quantity 1e400", "POST", "/orders", base % b"1e400", False),
        ("quantity -1", "POST", "/orders", order([item(-1)]), False),
        ("quantity 1.5", "POST", "/orders", base % b"1.5", False),
        ("quantity as a string", "POST", "/orders", base % b'"2"', False),
        ("two lines summing past Int64", "POST", "/orders", order([item(2**62 + 1)] * 2), False),
        ("10,000 lines", "POST", "/orders", order([item(1)] * 10_000), False),
        ("unknown shop", "POST", "/orders", order([item(1)], shop="shop_nowhere"), False),
        ("unknown product", "POST", "/orders", order([item(1, "prod_zz")]), False),
        ("no lines", "POST", "/orders", order([]), False),
        ("not JSON", "POST", "/orders", b"{{{{", False),
        ("arrays nested 100,000 deep", "POST", "/orders", b"[" * 100_000 + b"]" * 100_000, False),
        ("objects nested 50,000 deep", "POST", "/orders", b'{"a":' * 50_000 + b"1" + b"}" * 50_000, False),
        ("invalid UTF-8", "POST", "/orders", b'{"userId":"\xff\xfe","shopId":"shop_malmo","items":[]}', False),
        ("NUL in a string", "POST", "/orders", b'{"userId":"u\\u0000","shopId":"shop_malmo","items":[]}', False),
        ("lone surrogate", "POST", "/orders", b'{"userId":"\\ud800","shopId":"shop_malmo","items":[]}', False),
        ("a 5 MB product id", "POST", "/orders", order([item(1, "p" * 5_000_000)]), True),
        ("campaign 10^9 per cent off", "POST", "/campaigns", campaign % (b"1000000000", b"3600"), False),
        ("campaign lasting Int64.min s", "POST", "/campaigns", campaign % (b"20", b"-9223372036854775808"), False),
        ("campaign lasting Int64.max s", "POST", "/campaigns", campaign % (b"20", b"9223372036854775807"), False),
        ("campaign 1e308", "POST", "/campaigns", campaign % (b"1e308", b"1e308"), False),
        ("path traversal", "GET", "/orders/..%2F..%2Fetc%2Fpasswd", b"", False),
        ("NUL in a path", "GET", "/orders/%00", b"", False),
        ("100,000-byte path", "GET", "/orders/" + "a" * 100_000, b"", True),
        ("bad percent-encoding", "GET", "/products/%zz", b"", False),
        ("unknown method on a route", "DELETE", "/orders", b"", False),
    ]
    misses = []

    def judge(name, answer, closed_is_fine, also=()):
        code = status(answer)
        connected = not answer.startswith(b" [connect:")
        ok = (code is not None and (400 <= code < 500 or code in also)) or (code is None and closed_is_fine and connected)
        print(f"  {name:34s} {code if code is not None else answer[-40:].decode('latin-1', 'replace') or '(closed)'}")
        if not ok:
            misses.append(f"{name}: {code if code is not None else 'no answer'}")

    if status(request("GET", "/health")) != 200:
        print(f"no gateway answers GET /health at {host}:{port}: start one (erp up) or pass --url", file=sys.stderr)
        return 2
    print(f"hostile requests to {host}:{port}")
    for name, method, path, body, closed_is_fine in cases:
        headers = {"Idempotency-Key": f"hostile-{run}-{name.replace(' ', '-')}"} if method == "POST" else {}
        judge(name, request(method, path, body, headers), closed_is_fine)
    judge("no API key", request("GET", "/products", with_key=False), False)
    reuse = {"Idempotency-Key": f"hostile-{run}-reused"}
    first = status(request("POST", "/orders", order([item(1)]), reuse))
    print(f"  {'Idempotency-Key, first use':34s} {first}")
    if first not in (200, 201):
        misses.append(f"Idempotency-Key, first use: {first}")
    judge("Idempotency-Key reused, other body", request("POST", "/orders", order([item(2)]), reuse), False)
    judge("a 60,000-byte Idempotency-Key", request("POST", "/orders", order([item(1)]), {"Idempotency-Key": "k" * 60_000}), False)
    prefix = b"POST /orders HTTP/1.1\r\nHost: x\r\nX-API-Key: " + key.encode() + b"\r\n"
    judge("Content-Length past Int64", raw(prefix + b"Content-Length: 99999999999999999999\r\n\r\n{}"), True)
    judge("negative Content-Length", raw(prefix + b"Content-Length: -5\r\n\r\n{}"), True)
    judge("bad chunked body", raw(prefix + b"Transfer-Encoding: chunked\r\n\r\nZZZ\r\n"), True)
    judge("a 2 MB header", raw(b"GET /products HTTP/1.1\r\nHost: x\r\nX: " + b"a" * 2_000_000 + b"\r\n\r\n"), True)
    judge("10,000 headers", raw(b"GET /products HTTP/1.1\r\nHost: x\r\n" + b"".join(b"H%d: v\r\n" % i for i in range(10_000)) + b"\r\n"), True)
    # An unrecognized method is 501 (RFC 9110, 15.6.2): what the HTTP parser makes of bytes.
    judge("binary garbage", raw(b"\x00\x01\x02\xff" * 1000), True, also=(501,))

    # A server may cap its connections and refuse the rest: that is allowed, as long as it still
    # answers /health beside the ones it holds.
    half_open, refused, reset = [], 0, 0
    for _ in range(300):
        try:
            s = socket.create_connection((host, port), timeout=2)
        except OSError:
            refused += 1
            continue
        half_open.append(s)
        try:
            s.sendall(b"POST /orders HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n{")
        except OSError:
            reset += 1  # accepted, then reset at once: closed with the others below
    time.sleep(1)
    health = status(request("GET", "/health"))
    print(f"  {'/health beside 300 half-open':34s} {health} ({len(half_open) - reset} held open, {refused} refused, {reset} reset)")
    if health != 200:
        misses.append(f"/health beside 300 half-open connections: {health}")
    for s in half_open:
        s.close()

    sane = status(request("POST", "/orders", order([item(1)]), {"Idempotency-Key": f"hostile-{run}-sane"}))
    print(f"  {'a sane order afterwards':34s} {sane}")
    if sane not in (200, 201):
        misses.append(f"a sane order afterwards: {sane}")
    if misses:
        print("MISSED:\n  " + "\n  ".join(misses))
        return 1
    print("every hostile request refused; the gateway still serves")
    return 0


if __name__ == "__main__":
    sys.exit(main())
