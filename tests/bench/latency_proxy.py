#!/usr/bin/env python3
"""A loopback TCP proxy that holds every forwarded read for a fixed time, each way: a crude
stand-in for a store far away (each request and each response waits at least DELAY_MS / 2).

  python3 tests/bench/latency_proxy.py LISTEN_PORT TARGET_PORT DELAY_MS

Used by BENCHMARKS.md to show whether S3 requests wait on one another (moto alone answers in
milliseconds, which hides it). Only ever binds and connects to 127.0.0.1.
"""
import asyncio
import sys


async def forward(reader, writer, hold):
    try:
        while True:
            data = await reader.read(1 << 20)
            if not data:
                break
            await asyncio.sleep(hold)
            writer.write(data)
            await writer.drain()
    finally:
        writer.close()


async def main(listen, target, delay_ms):
    hold = delay_ms / 2000

    async def handle(client_r, client_w):
        server_r, server_w = await asyncio.open_connection("127.0.0.1", target)
        await asyncio.gather(
            forward(client_r, server_w, hold),
            forward(server_r, client_w, hold),
            return_exceptions=True,
        )

    server = await asyncio.start_server(handle, "127.0.0.1", listen)
    async with server:
        await server.serve_forever()


if __name__ == "__main__":
    if len(sys.argv) != 4:
        sys.exit(__doc__)
    asyncio.run(main(int(sys.argv[1]), int(sys.argv[2]), float(sys.argv[3])))
