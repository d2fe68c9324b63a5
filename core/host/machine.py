"""The machine this server really has: CPUs, memory and memory pressure, each with its source.

A container (Docker, Kubernetes, systemd slices) runs Odoo with a memory limit
and a CPU quota far below what the host has; ``psutil.cpu_count()`` and
``psutil.virtual_memory()`` show the host. This module reads what the kernel
really grants this process:

- CPUs: the CPU affinity (``taskset``, ``--cpuset-cpus``), then the CFS quota
  of the process's cgroup and of each ancestor (v2 ``cpu.max``; v1
  ``cpu.cfs_quota_us`` / ``cpu.cfs_period_us``), the smallest wins;
- memory: the cgroup's limit (v2 ``memory.max``; v1 ``memory.limit_in_bytes``),
  the smallest of the cgroup and its ancestors, else the host's ``MemTotal``;
- available memory: the limit minus the cgroup's working set (``memory.current``
  or ``memory.usage_in_bytes``, less the inactive page cache that the kernel
  reclaims first), never more than the host's ``MemAvailable``;
- pressure: PSI ``some avg10`` (share of the last 10 s during which some task
  waited for memory), of the cgroup (v2 ``memory.pressure``) and of the host
  (``/proc/pressure/memory``), the higher of the two.

Every function takes the folder the files are read under (``root``, ``/`` on a
real host; tests build fixture folders), never raises, and says where each
figure comes from. No Odoo here.
"""

import os
from dataclasses import dataclass

from ..common.units import human_size

#: Where the files are read by default (tests and benchmarks point it elsewhere).
ROOT = "/"

CONTAINER_LIMIT = "container limit"
HOST_RAM = "host RAM"
CONTAINER_AVAILABLE = "container limit minus its working set"
HOST_AVAILABLE = "host MemAvailable"
CPU_QUOTA = "container CPU quota"
CPU_AFFINITY = "CPU affinity"
HOST_CPUS = "host CPUs"
CONTAINER_PRESSURE = "container memory.pressure"
HOST_PRESSURE = "host /proc/pressure/memory"
NO_PRESSURE = "not exposed by this kernel (no PSI)"
UNKNOWN = "unknown"

#: cgroup v1 writes "no limit" as the largest page-aligned 64-bit number.
_V1_UNLIMITED = 1 << 62


@dataclass(frozen=True)
class Figure:
    """One figure of the machine and where it comes from (``value`` ``None``: not known).

    >>> str(Figure(4 * 1024 ** 3, CONTAINER_LIMIT, "bytes"))
    '4.0 GiB (container limit)'
    >>> str(Figure(1.5, CPU_QUOTA, "cpus")), str(Figure(2.0, HOST_CPUS, "cpus"))
    ('1.5 CPUs (container CPU quota)', '2 CPUs (host CPUs)')
    >>> str(Figure(None, NO_PRESSURE, "pct"))
    'n/a (not exposed by this kernel (no PSI))'
    """

    value: float | None
    source: str
    unit: str = "bytes"

    def __str__(self):
        if self.value is None:
            shown = "n/a"
        elif self.unit == "bytes":
            shown = human_size(self.value)
        elif self.unit == "cpus":
            shown = f"{self.value:g} CPU" + ("" if self.value == 1 else "s")
        else:
            shown = f"{self.value:.2f} %"
        return f"{shown} ({self.source})"


@dataclass(frozen=True)
class Machine:
    """``cpus`` (may be fractional under a quota), ``memory`` and ``available`` (bytes),
    ``pressure`` (PSI some avg10, %)."""

    cpus: Figure
    memory: Figure
    available: Figure
    pressure: Figure

    @property
    def in_container(self):
        return CONTAINER_LIMIT == self.memory.source or CPU_QUOTA == self.cpus.source


def read(root=None, affinity=None, host_cpus=None):
    """The :class:`Machine` seen from ``root`` (default :data:`ROOT`).

    ``affinity`` (CPUs this process may run on) and ``host_cpus`` default to
    ``os.sched_getaffinity(0)`` and ``os.cpu_count()``.
    """
    root = ROOT if root is None else root
    cgroup = _Cgroup(root)
    memory = memory_total(root, cgroup)
    return Machine(
        cpus=cpus(root, affinity, host_cpus, cgroup),
        memory=memory,
        available=available(root, cgroup, memory),
        pressure=pressure(root, cgroup),
    )


def cpus(root=None, affinity=None, host_cpus=None, cgroup=None):
    """:class:`Figure` of the CPUs this process can use (``unit`` ``cpus``)."""
    root = ROOT if root is None else root
    cgroup = cgroup or _Cgroup(root)
    host = host_cpus or os.cpu_count() or 1
    if affinity is None:
        try:
            affinity = len(os.sched_getaffinity(0))
        except (AttributeError, OSError):
            affinity = host
    best = Figure(float(affinity), CPU_AFFINITY if affinity < host else HOST_CPUS, "cpus")
    quota = cgroup.cpu_quota()
    if quota is not None and quota < best.value:
        best = Figure(round(quota, 2), CPU_QUOTA, "cpus")
    return best


def memory_total(root=None, cgroup=None):
    """:class:`Figure` of the memory this process's cgroup may use, else the host's RAM (bytes)."""
    root = ROOT if root is None else root
    cgroup = cgroup or _Cgroup(root)
    host = _meminfo(root).get("MemTotal")
    limit = cgroup.memory_limit()
    if limit is not None and (host is None or limit < host):
        return Figure(limit, CONTAINER_LIMIT)
    return Figure(host, HOST_RAM if host is not None else UNKNOWN)


def available(root=None, cgroup=None, total=None):
    """:class:`Figure` of the memory still available to this process's cgroup (bytes)."""
    root = ROOT if root is None else root
    cgroup = cgroup or _Cgroup(root)
    total = total or memory_total(root, cgroup)
    host = _meminfo(root).get("MemAvailable")
    if total.source == CONTAINER_LIMIT:
        used = cgroup.working_set()
        if used is not None:
            left = max(total.value - used, 0)
            if host is None or left <= host:
                return Figure(left, CONTAINER_AVAILABLE)
    return Figure(host, HOST_AVAILABLE if host is not None else UNKNOWN)


def pressure(root=None, cgroup=None):
    """:class:`Figure` of PSI ``some avg10`` (%), the higher of the cgroup's and the host's."""
    root = ROOT if root is None else root
    cgroup = cgroup or _Cgroup(root)
    found = [
        Figure(value, source, "pct")
        for value, source in (
            (cgroup.pressure(), CONTAINER_PRESSURE),
            (_psi_some_avg10(os.path.join(root, "proc/pressure/memory")), HOST_PRESSURE),
        )
        if value is not None
    ]
    if not found:
        return Figure(None, NO_PRESSURE, "pct")
    return max(found, key=lambda figure: figure.value)


# ---------------------------------------------------------------------- cgroups


class _Cgroup:
    """The cgroup (v2, else v1) of the current process under ``root``, and its ancestors."""

    def __init__(self, root):
        self.base = os.path.join(root, "sys/fs/cgroup")
        self.v2 = os.path.exists(os.path.join(self.base, "cgroup.controllers"))
        self.paths = _own_cgroups(root)

    def _dirs(self, controller):
        """The cgroup's folders, deepest first, up to the mount point (that exist under ``root``)."""
        if self.v2:
            mount, path = self.base, self.paths.get("", "/")
        else:
            names = ("cpu,cpuacct", "cpu", "cpuacct,cpu") if controller == "cpu" else (controller,)
            mounts = [os.path.join(self.base, name) for name in names]
            mount = next((folder for folder in mounts if os.path.isdir(folder)), None)
            path = self.paths.get(controller, "/")
            if mount is None:
                return []
        parts = [part for part in path.split("/") if part]
        found = []
        for depth in range(len(parts), -1, -1):
            folder = os.path.join(mount, *parts[:depth])
            if os.path.isdir(folder):
                found.append(folder)
        return found

    def memory_limit(self):
        """The smallest memory limit of the cgroup and its ancestors, bytes; ``None``: no limit."""
        name = "memory.max" if self.v2 else "memory.limit_in_bytes"
        limits = [_number(os.path.join(folder, name)) for folder in self._dirs("memory")]
        limits = [limit for limit in limits if limit is not None and limit < _V1_UNLIMITED]
        return min(limits) if limits else None

    def working_set(self):
        """What the cgroup holds that the kernel cannot drop at once: usage less inactive page cache."""
        folders = self._dirs("memory")
        if not folders:
            return None
        folder = folders[0]
        usage = _number(os.path.join(folder, "memory.current" if self.v2 else "memory.usage_in_bytes"))
        if usage is None:
            return None
        stat = _keyed(os.path.join(folder, "memory.stat"))
        inactive = stat.get("inactive_file" if self.v2 else "total_inactive_file", 0)
        return max(usage - inactive, 0)

    def cpu_quota(self):
        """The smallest CPU quota of the cgroup and its ancestors, in CPUs; ``None``: no quota."""
        quotas = []
        for folder in self._dirs("cpu"):
            if self.v2:
                words = _text(os.path.join(folder, "cpu.max")).split()
                quota, period = (words + ["max", "100000"])[:2] if words else ("max", "100000")
            else:
                quota = _text(os.path.join(folder, "cpu.cfs_quota_us")).strip() or "-1"
                period = _text(os.path.join(folder, "cpu.cfs_period_us")).strip() or "100000"
            try:
                quota, period = int(quota), int(period)
            except ValueError:
                continue  # "max": no quota at this level
            if quota > 0 and period > 0:
                quotas.append(quota / period)
        return min(quotas) if quotas else None

    def pressure(self):
        if not self.v2:
            return None
        for folder in self._dirs("memory"):
            value = _psi_some_avg10(os.path.join(folder, "memory.pressure"))
            if value is not None:
                return value
        return None


def _own_cgroups(root):
    """``{controller: path}`` of the current process (``""`` for the v2 hierarchy)."""
    found = {}
    for line in _text(os.path.join(root, "proc/self/cgroup")).splitlines():
        parts = line.split(":", 2)
        if len(parts) != 3:
            continue
        _id, controllers, path = parts
        for controller in controllers.split(",") if controllers else [""]:
            found[controller] = path
    return found


# ---------------------------------------------------------------------- files


def _text(path):
    try:
        with open(path, encoding="ascii", errors="replace") as file:
            return file.read()
    except OSError:
        return ""


def _number(path):
    """An integer file (``max``, empty or unreadable: ``None``)."""
    try:
        return int(_text(path).strip())
    except ValueError:
        return None


def _keyed(path):
    """``{key: int}`` of a ``key value`` file (``memory.stat``)."""
    found = {}
    for line in _text(path).splitlines():
        words = line.split()
        if len(words) == 2 and words[1].isdigit():
            found[words[0]] = int(words[1])
    return found


def _meminfo(root):
    """``{"MemTotal": bytes, "MemAvailable": bytes}`` of the host (``/proc/meminfo``)."""
    found = {}
    for line in _text(os.path.join(root, "proc/meminfo")).splitlines():
        name, _sep, rest = line.partition(":")
        words = rest.split()
        if name in ("MemTotal", "MemAvailable") and words and words[0].isdigit():
            found[name] = int(words[0]) * (1024 if words[1:] == ["kB"] else 1)
    return found


def _psi_some_avg10(path):
    """``avg10`` of the ``some`` line of a PSI file, %; ``None`` when absent.

    >>> import tempfile
    >>> with tempfile.NamedTemporaryFile("w", suffix=".psi") as psi:
    ...     _ = psi.write("some avg10=3.25 avg60=1.00 avg300=0.20 total=12345\\n"
    ...                   "full avg10=1.00 avg60=0.50 avg300=0.10 total=2345\\n")
    ...     psi.flush()
    ...     _psi_some_avg10(psi.name)
    3.25
    """
    for line in _text(path).splitlines():
        words = line.split()
        if words and words[0] == "some":
            for word in words[1:]:
                key, _sep, value = word.partition("=")
                if key == "avg10":
                    try:
                        return float(value)
                    except ValueError:
                        return None
    return None
