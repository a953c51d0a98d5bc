# A LittleFS block device backed by a host file, for the simulated board.
# It speaks the extended block protocol that vfs.VfsLfs2 uses on the ESP32
# (readblocks/writeblocks with an offset, erase via ioctl 6), with the ESP32's
# 4096-byte erase blocks, so the filesystem behaves as it would on the board.
from micropython import const

BLOCK_SIZE = const(4096)
_IOCTL_BLOCK_COUNT = const(4)
_IOCTL_BLOCK_SIZE = const(5)
_IOCTL_ERASE = const(6)


class FileBlockDev:
    def __init__(self, path, block_count=256):
        self.block_count = block_count
        try:
            self.f = open(path, "r+b")
        except OSError:
            self.f = open(path, "w+b")
            blank = b"\xff" * BLOCK_SIZE
            for _ in range(block_count):
                self.f.write(blank)
            self.f.flush()

    def readblocks(self, block, buf, offset=0):
        self.f.seek(block * BLOCK_SIZE + offset)
        self.f.readinto(buf)

    def writeblocks(self, block, buf, offset=0):
        self.f.seek(block * BLOCK_SIZE + offset)
        self.f.write(buf)
        self.f.flush()

    def ioctl(self, op, arg):
        if op == _IOCTL_BLOCK_COUNT:
            return self.block_count
        if op == _IOCTL_BLOCK_SIZE:
            return BLOCK_SIZE
        if op == _IOCTL_ERASE:
            self.f.seek(arg * BLOCK_SIZE)
            self.f.write(b"\xff" * BLOCK_SIZE)
            self.f.flush()
            return 0
        return 0 if op in (1, 2, 3) else None


def mount(path, mountpoint="/flash", block_count=256):
    """Mount (formatting on first use) a LittleFS v2 image kept in a host file."""
    import vfs
    dev = FileBlockDev(path, block_count)
    try:
        vfs.mount(vfs.VfsLfs2(dev), mountpoint)
    except OSError:
        vfs.VfsLfs2.mkfs(dev)
        vfs.mount(vfs.VfsLfs2(dev), mountpoint)
    return dev
