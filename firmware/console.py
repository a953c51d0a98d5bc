# The technician's REPL on the serial port (firmware/repl/session.py), as an
# asyncio task beside the meter. Until someone types, only this waits on the
# port: the REPL's code is loaded at the first byte, so a meter nobody
# services keeps it out of its heap.
import asyncio


def task(app):
    async def console():
        stream, chunk = app.board.console_io()   # also makes Ctrl-C a byte, not an interrupt
        reader = asyncio.StreamReader(stream)
        first = await reader.read(1)
        while not first:      # nothing attached to the port (a closed pipe)
            await asyncio.sleep_ms(1000)
            first = await reader.read(1)
        from firmware.repl.session import Repl
        await Repl(app, stream, chunk, reader).run(first)
    return console
