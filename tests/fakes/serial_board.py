"""A board on a serial port, for commands the docs give for /dev/ttyUSB0.

Run under socat, whose pty stands for the board's USB serial port:

    socat PTY,link=TTY,raw,echo=0 EXEC:"python serial_board.py DEVICE_DIR MICROPYTHON",pty,raw,echo=0

A unix-port MicroPython REPL runs in DEVICE_DIR, which stands for the board's
filesystem. What the unix port lacks is a soft reset: Ctrl-D in the raw REPL
(what mpremote sends first unless told `resume`) ends its process. A board
answers "soft reboot" and comes back in the raw REPL, so that is what this
does: it restarts the REPL on the same port and puts it back in raw mode.
"""
import os
import pty
import select
import subprocess
import sys
import tty


def spawn(device_dir, micropython):
    master, slave = pty.openpty()
    tty.setraw(slave)
    proc = subprocess.Popen([micropython], cwd=device_dir, stdin=slave, stdout=slave,
                            stderr=slave, close_fds=True)
    os.close(slave)
    return proc, master


def main():
    device_dir, micropython = sys.argv[1], sys.argv[2]
    proc, master = spawn(device_dir, micropython)
    while True:
        try:
            ready, _, _ = select.select([0, master], [], [], 0.2)
        except KeyboardInterrupt:
            break
        if 0 in ready:
            data = os.read(0, 4096)
            if not data:
                break  # the port was closed
            os.write(master, data)
        if master in ready:
            try:
                data = os.read(master, 4096)
            except OSError:
                data = b""
            if data:
                os.write(1, data)
                continue
        if proc.poll() is not None:
            # the REPL ended: a soft reset, as the board does it
            os.close(master)
            os.write(1, b"soft reboot\r\n")
            proc, master = spawn(device_dir, micropython)
            os.write(master, b"\x01")  # back to the raw REPL mpremote was in
    proc.kill()
    proc.wait()


if __name__ == "__main__":
    main()
