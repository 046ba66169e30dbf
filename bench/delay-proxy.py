#!/usr/bin/env python3
"""A TCP proxy that adds latency: every chunk, each way, is forwarded DELAY_MS after it arrived (a
latency, not a bandwidth limit: chunks in flight overlap, as on a real link). Prints `ready` once it
listens. Usage: delay-proxy.py LISTEN_PORT TARGET_PORT DELAY_MS. Used by the benchmarks to stand for a
VPN or the internet between an operator's laptop and Azure."""
import asyncio, sys, time
listen_port, target_port, delay = int(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3]) / 1000.0

async def pipe(reader, writer):
    queue = asyncio.Queue()
    async def read():
        while data := await reader.read(65536):
            await queue.put((time.monotonic() + delay, data))
        await queue.put((time.monotonic() + delay, None))
    async def write():
        while True:
            due, data = await queue.get()
            await asyncio.sleep(max(0.0, due - time.monotonic()))
            if data is None:
                break
            writer.write(data)
            await writer.drain()
        writer.close()
    await asyncio.gather(read(), write(), return_exceptions=True)

async def serve(client_reader, client_writer):
    try:
        server_reader, server_writer = await asyncio.open_connection("127.0.0.1", target_port)
    except OSError:
        client_writer.close()
        return
    await asyncio.gather(pipe(client_reader, server_writer), pipe(server_reader, client_writer),
                         return_exceptions=True)

async def main():
    server = await asyncio.start_server(serve, "127.0.0.1", listen_port)
    print("ready", flush=True)
    async with server:
        await server.serve_forever()

asyncio.run(main())
