"""Capabilities: none survives into student code, in the user namespace or out of it."""

import ctypes

from . import linux

LAST_CAP = 63


def drop_bounding_set(lib):
    """Before the uid changes (it needs CAP_SETPCAP): no capability can ever come back."""
    for cap in range(LAST_CAP + 1):
        lib.prctl(linux.PR_CAPBSET_DROP, cap, 0, 0, 0)


def drop_all(lib):
    """Empty effective, permitted and inheritable sets (capset, version 3)."""

    class Header(ctypes.Structure):
        _fields_ = [("version", ctypes.c_uint32), ("pid", ctypes.c_int)]

    class Data(ctypes.Structure):
        _fields_ = [("effective", ctypes.c_uint32), ("permitted", ctypes.c_uint32), ("inheritable", ctypes.c_uint32)]

    hdr, data = Header(0x20080522, 0), (Data * 2)()  # _LINUX_CAPABILITY_VERSION_3
    linux.check(lib.capset(ctypes.byref(hdr), ctypes.byref(data)), "capset")
