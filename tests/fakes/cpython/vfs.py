# CPython stand-in for MicroPython's `vfs` (mount, umount, VfsLfs2) for the
# coverage run only. It keeps LittleFS's observable contract on a block
# device: mkfs writes the superblock pair (blocks 0 and 1, with the
# "littlefs" magic at offset 8), and mount fails with ENODEV unless a
# superblock carries the magic. The real VfsLfs2 is used in the MicroPython run.
_MAGIC = b"littlefs"
_mounts = {}


class VfsLfs2:
    def __init__(self, bdev, readsize=32, progsize=32, lookahead=32, mtime=True):
        self.bdev = bdev

    @staticmethod
    def mkfs(bdev, readsize=32, progsize=32, lookahead=32):
        for b in (0, 1):
            bdev.ioctl(6, b)
            bdev.writeblocks(b, b"\x00" * 8 + _MAGIC, 0)


def mount(fsobj, mount_point, *, readonly=False):
    if mount_point in _mounts:
        raise OSError(1)    # EPERM: already mounted
    buf = bytearray(16)
    for b in (0, 1):
        fsobj.bdev.readblocks(b, buf, 0)
        if buf[8:16] == _MAGIC:
            _mounts[mount_point] = fsobj
            return
    raise OSError(19)       # ENODEV: no filesystem


def umount(mount_point):
    if mount_point not in _mounts:
        raise OSError(22)   # EINVAL
    del _mounts[mount_point]
