"""Write the constructed boot logs of ``tests/data/constructed/*.log`` (see README.md there).

Each log is written line by line in the ``memblock=debug`` formats of its kernel version (the
spellings, field widths and end conventions the kernel's debug prints used then). The
kernel's answers to the allocation requests are the addresses the memblock rules give on the
layout of the log; they are computed here with ``arena.memblock`` so that the logs stay
consistent if a layout is edited. Run ``python tests/data/make_constructed.py`` to rewrite them.
"""

from __future__ import annotations

from pathlib import Path

from arena.bootlog import AllocOp
from arena.memblock import Memblock
from arena.trace import _alloc

HERE = Path(__file__).parent / "constructed"


class Log:
    """A log being written and the memblock that gives the kernel's answers."""

    def __init__(self, version: tuple[int, int], *, numa: bool = False, stamp: bool = True,
                 quote: str = "", digits: int = 16, exclusive: bool = False) -> None:
        self.mb = Memblock(None, kernel_version=version, numa=numa)
        self.mb.allow_resize()
        self.lines: list[str] = []
        self.stamp, self.quote, self.digits, self.exclusive = stamp, quote, digits, exclusive
        self.t = 0

    def say(self, text: str) -> None:
        self.t += 7
        prefix = f"[    0.{self.t:06d}] " if self.stamp else ""
        self.lines.append(f"{self.quote}{prefix}{text}")

    def comment(self, text: str) -> None:
        self.lines.append(f"{self.quote}# {text}")

    def pa(self, value: int) -> str:
        return f"0x{value:0{self.digits}x}"

    def rng(self, base: int, size: int) -> str:
        end = base + size if self.exclusive else base + size - 1
        return f"[{self.pa(base)}-{self.pa(end)}]"

    # -- memblock calls, each printed the way the version printed it --------------------------

    def add(self, base: int, size: int, caller: str, flags: str = "", nid: int | None = None,
            func: str = "memblock_add") -> None:
        node = "" if nid is None else f" nid={nid}"
        self.say(f"{func}: {self.rng(base, size)}{node}{flags} {caller}")
        if nid is None:
            self.mb.add(base, size)
        else:
            self.mb.add_node(base, size, nid)

    def reserve(self, base: int, size: int, caller: str, flags: str = "",
                func: str = "memblock_reserve") -> None:
        self.say(f"{func}: {self.rng(base, size)}{flags} {caller}")
        self.mb.reserve(base, size)

    def free(self, base: int, size: int, caller: str, func: str) -> None:
        self.say(f"{func}: {self.rng(base, size)} {caller}")
        if "late" not in func:
            self.mb.phys_free(base, size)

    def alloc(self, func: str, size: int, align: int, nid: int | None, start: int, end: int,
              caller: str, answer_caller: str, flags: str = "", width: int | None = None,
              reserve_func: str = "memblock_reserve") -> int | None:
        w = self.digits if width is None else width
        node = "" if nid is None else f" nid={nid}"
        self.say(f"{func}: {size} bytes align={align:#x}{node} from=0x{start:0{w}x} "
                 f"max_addr=0x{end:0{w}x} {caller}")
        found = _alloc(self.mb, AllocOp(0, func, size, align, nid, start, end))
        if found is not None:
            self.say(f"{reserve_func}: {self.rng(found, size)}{flags} {answer_caller}")
        return found

    def silent_alloc(self, size: int, align: int, caller: str, flags: str = "") -> None:
        """An allocation that prints no request (4.x ``__alloc_memory_core_early``): only its
        reserve line."""
        found = _alloc(self.mb, AllocOp(0, "silent", size, align, -1, 0, 0))
        assert found is not None
        self.say(f"memblock_reserve: {self.rng(found, size)}{flags} {caller}")

    def dump(self, nodes: bool = True, flags: bool = True, sizes16: bool = True) -> None:
        """``memblock_dump_all`` as this kernel printed it."""
        mb = self.mb
        size = (lambda v: self.pa(v)) if sizes16 else (lambda v: f"{v:#x}")
        self.say("MEMBLOCK configuration:")
        self.say(f" memory size = {size(mb.memory.total_size)} reserved size = "
                 f"{size(mb.reserved.total_size)}")
        for t in (mb.memory, mb.reserved):
            self.say(f" {t.name}.cnt  = {t.cnt:#x}")
            for i, r in enumerate(t.regions):
                node = (f" on node {r.nid}" if nodes and 0 <= r.nid < mb.max_numnodes else "")
                flag = f" flags: {int(r.flags):#x}" if flags else ""
                self.say(f" {t.name}[{i:#x}]\t[{self.pa(r.base)}-{self.pa(r.base + r.size - 1)}]"
                         f", {size(r.size)} bytes{node}{flag}")

    def write(self, name: str, header: list[str], keep_from: int = 0) -> None:
        lines = [f"# {h}" for h in header] + self.lines[keep_from:]
        (HERE / name).write_text("\n".join(lines) + "\n", encoding="utf-8")


MiB, GiB = 1 << 20, 1 << 30

def log_3_10() -> None:
    """3.10: exclusive ends, no memblock_add printed, no flags, 14-digit %#016llx."""
    g = Log((3, 10), digits=14, exclusive=True)
    g.say("Linux version 3.10.0-constructed (gcc version 4.8.2) #1 SMP")
    g.mb.add(0x1000, 0x9E000)  # set up before memblock=debug took effect: not printed
    g.mb.add(0x100000, GiB - 0x100000)
    g.mb.reserve(0, 0x10000)
    g.mb.reserve(0x1000000, 16 * MiB)
    g.dump(nodes=False, flags=False, sizes16=False)
    g.reserve(0x3FFF0000, 0x10000, "setup_log_buf+0x5c/0x1a0")
    g.reserve(0x9F000, 0x61000, "reserve_ebda_region+0x6f/0x79")
    g.free(0x3FFF8000, 0x8000, "free_early_partial+0x1d/0x30", func="   memblock_free")
    g.reserve(0x2000000, 0x1234, "reserve_initrd+0x90/0x160")
    g.dump(nodes=False, flags=False, sizes16=False)
    g.write("constructed-3.10-exclusive-end.log", [
        "CONSTRUCTED (not a real machine): kernel 3.10 spellings, written from its debug formats.",
        "Ends are printed exclusive (base + size) before 3.14; memblock_free has 3 leading spaces;",
        "memory was added before memblock=debug took effect, so the first dump holds the start.",
    ])


def log_3_15() -> None:
    """3.15: inclusive ends, virt_alloc requests (from=0x%llx), flags fields, no memblock_add."""
    g = Log((3, 15), digits=14)
    g.say("Linux version 3.15.0-constructed (gcc version 4.8.2) #1 SMP")
    g.mb.add(0x1000, 0x9E000)
    g.mb.add(0x100000, 2 * GiB - 0x100000)
    g.mb.reserve(0, 0x10000)
    g.mb.reserve(0x1000000, 0x1800000)
    g.dump(nodes=False, sizes16=False)
    g.reserve(0x7F000000, MiB, "setup_arch+0x58/0x5c4", flags=" flags 0x0")
    va = "memblock_virt_alloc_internal+0x128/0x1a4"
    g.alloc("memblock_virt_alloc_try_nid_nopanic", 4096, 0, -1, 0, 0,
            "alloc_node_mem_map+0x5c/0x80", va, flags=" flags 0x0", width=0)
    big = g.alloc("memblock_virt_alloc_try_nid", 16384, 0x1000, 0, 0x1000000, 0,
                  "sparse_init+0x2c/0x1d0", va, flags=" flags 0x0", width=0)
    assert big is not None
    g.free(big, 16384, "sparse_init+0x1b4/0x1d0", func="   memblock_free")
    g.alloc("memblock_virt_alloc_try_nid", 8192, 0x1000, -1, 0, 0,
            "pcpu_embed_first_chunk+0x1a0/0x6f0", va, flags=" flags 0x0", width=0)
    g.dump(nodes=False, sizes16=False)
    g.write("constructed-3.15-no-memblock-add.log", [
        "CONSTRUCTED (not a real machine): kernel 3.15 spellings, written from its debug formats.",
        "3.15 prints no memblock_add: the first MEMBLOCK configuration dump holds the memory.",
        "Requests print from=/max_addr= as 0x%llx; reserves print 'flags 0x0'; the free after the",
        "second request gives its block back and the third request lands in it.",
    ])


def log_4_4() -> None:
    """4.4: e-mail quoted, 14-digit with flags, raw-address callers, align=0, requests that
    are not printed (__alloc_memory_core_early), __memblock_free_late."""
    g = Log((4, 4), quote="> ", digits=14)
    g.say("Linux version 4.4.0-constructed (gcc version 5.4.0) #1 SMP")
    g.reserve(0x1000000, 0x1A00000, "0xffffffff81f6a1c4", flags=" flags 0x0")
    g.reserve(0, 0x10000, "setup_arch+0x1e1/0xc2c", flags=" flags 0x0")
    g.add(0x1000, 0x9E000, "e820_memblock_setup+0x4e/0x6b", flags=" flags 0x0")
    g.add(0x100000, 2 * GiB - 0x100000, "0xffffffff81f7b2c1", flags=" flags 0x0")
    g.dump(nodes=False, sizes16=False)
    g.silent_alloc(0x8000, 0x1000, "__alloc_memory_core_early+0x7b/0xc3", flags=" flags 0x0")
    va = "memblock_virt_alloc_internal+0x128/0x1a4"
    g.alloc("memblock_virt_alloc_try_nid_nopanic", 100, 0, -1, 0, 0, "0xffffffff81f80123", va,
            flags=" flags 0x0", width=0)
    blk = g.alloc("memblock_virt_alloc_try_nid", 0x4000, 0x1000, -1, 0x1000000, 0,
                  "sparse_init+0x2c/0x1d0", va, flags=" flags 0x0", width=0)
    g.silent_alloc(0x2000, 0x1000, "__alloc_memory_core_early+0x7b/0xc3", flags=" flags 0x0")
    assert blk is not None
    g.free(blk, 0x4000, "swiotlb_free+0x4c/0x80", func="__memblock_free_late")
    g.dump(nodes=False, sizes16=False)
    g.write("constructed-4.4-quoted-raw-callers.log", [
        "CONSTRUCTED (not a real machine): kernel 4.4 spellings, written from its debug formats,",
        "quoted in an e-mail reply ('> '). Two allocations print no request, only their reserve",
        "(caller __alloc_memory_core_early); some callers are raw addresses (no kallsyms).",
    ])


def log_4_18() -> None:
    """4.18: %pa 16-digit, no flags, no timestamps, __memblock_free_early then reuse."""
    g = Log((4, 18), stamp=False)
    g.say("Linux version 4.18.0-constructed (gcc version 8.1.0) #1 SMP PREEMPT")
    g.add(0, GiB, "early_init_dt_add_memory_arch+0x168/0x174")
    g.reserve(0x80000, 0x1180000, "arm64_memblock_init+0x1a4/0x21c")
    va = "memblock_virt_alloc_internal+0xe4/0x17c"
    blk = g.alloc("memblock_virt_alloc_try_nid", 0x10000, 0x1000, -1, 0, 0,
                  "early_init_dt_alloc_memory_arch+0x24/0x30", va)
    assert blk is not None
    g.free(blk, 0x10000, "free_initrd_mem+0x30/0x48", func="__memblock_free_early")
    g.alloc("memblock_virt_alloc_try_nid_nopanic", 4096, 0x1000, -1, 0, 0,
            "alloc_node_mem_map+0x5c/0x80", va)
    g.alloc("memblock_virt_alloc_try_nid_raw", 8192, 0x1000, -1, 0, 0,
            "sparse_init+0x2c/0x1d0", va)
    g.dump(nodes=False)
    g.write("constructed-4.18-free-early.log", [
        "CONSTRUCTED (not a real machine): kernel 4.18 spellings, written from its debug formats.",
        "No timestamps. __memblock_free_early gives the first request's block back: the second",
        "request lands in it, which a replay that ignores the free gets wrong.",
    ])


def log_5_4() -> list[str]:
    """5.4: memblock_add_node without flags, NUMA requests, memblock_free (physical), a dump
    with nodes, then a # GAP and lines that are not replayed."""
    g = Log((5, 4), numa=True)
    g.say("Linux version 5.4.0-constructed (gcc version 9.2.0) #1 SMP")
    g.reserve(0x1000000, 0x2000000, "setup_arch+0x2b4/0xc2c")
    g.add(0, GiB, "numa_add_memblk+0x1a/0x2c", nid=0, func="memblock_add_node")
    g.add(GiB, GiB, "numa_add_memblk+0x1a/0x2c", nid=1, func="memblock_add_node")
    ar = "memblock_alloc_range_nid+0x9a/0x11b"
    blk = g.alloc("memblock_alloc_try_nid", 0x2000, 0x1000, 1, 0, 0,
                  "alloc_node_data+0x3c/0x120", ar)
    g.alloc("memblock_alloc_try_nid_raw", 0x200000, 0x200000, 0, 0x1000000, 0,
            "sparse_init_nid+0x5d/0x2bc", ar)
    assert blk is not None
    g.free(blk + 0x1000, 0x1000, "pcpu_free_alloc+0x1c/0x20", func="memblock_free")
    g.alloc("memblock_alloc_try_nid", 0x1000, 0x1000, -1, 0, 0, "early_pgtable+0x1/0x2", ar)
    g.dump()
    g.comment("GAP: the e-mail cut about 200 lines here")
    g.alloc("memblock_alloc_try_nid", 0x40, 0x40, -1, 0, 0, "setup_log_buf+0x1/0x2", ar)
    g.reserve(0x3000000, 0x1000, "reserve_crashkernel+0x1/0x2")
    g.write("constructed-5.4-gap.log", [
        "CONSTRUCTED (not a real machine): kernel 5.4 spellings, written from its debug formats.",
        "memblock_add_node prints no flags= before 5.16; the physical free is memblock_free.",
        "A '# GAP' comment marks lines left out: nothing after it is replayed.",
    ])
    return g.lines


def log_6_1() -> None:
    """6.1: the log begins at the first allocation; memory, the kernel image and a nomap range
    were set up before it (given on the command line, see README.md)."""
    g = Log((6, 1), numa=True)
    g.mb.add_node(0, 2 * GiB, 0)
    g.mb.reserve(0x1000000, 0x1000000)
    g.mb.mark_nomap(2 * GiB - 2 * MiB, 2 * MiB)
    ar = "memblock_alloc_range_nid+0x108/0x1a0"
    g.alloc("memblock_alloc_try_nid", 0x1000, 0x1000, -1, 0, 0, "spp_getpage+0x45/0x90", ar)
    g.alloc("memblock_phys_alloc_range", 0x200000, 0x200000, None, 0, GiB,
            "alloc_low_pages+0x91/0x150", ar)
    blk = g.alloc("memblock_alloc_exact_nid_raw", 0x8000, 0x1000, 0, 0x1000000, 0,
                  "sparse_init_nid+0x6e/0x2d0", ar)
    assert blk is not None
    g.free(blk, 0x4000, "sparse_buffer_fini+0x30/0x40", func="memblock_phys_free")
    g.alloc("memblock_alloc_try_nid", 0x3000, 0x1000, -1, 0, 0, "pcpu_alloc+0x1/0x2", ar)
    g.dump()
    g.write("constructed-6.1-starts-late.log", [
        "CONSTRUCTED (not a real machine): kernel 6.1 spellings, written from its debug formats.",
        "The log starts at the first allocation: replay it with the start state it does not",
        "print: --memory 0x0-0x7fffffff@0 --reserved 0x1000000-0x1ffffff --nomap 0x7fe00000-0x7fffffff",
    ])


def log_6_16() -> None:
    """6.16: a device-tree boot whose memory and kernel image were set up before memblock=debug
    took effect; __memblock_reserve lines with nid= and flags=."""
    g = Log((6, 16), numa=True)
    g.say("Linux version 6.16.0-constructed (riscv64-linux-gnu-gcc 14.2.0) #1 SMP")
    g.say("OF: fdt: Machine model: constructed")
    g.mb.add_node(0x80000000, GiB, 0)
    g.mb.add_node(0xC0000000, GiB, 1)
    g.mb.reserve(0x80000000, 0x2000000)
    g.mb.reserve_kern(0xBFE00000, 0x200000)
    g.dump()
    rk = " nid=-1 flags=20"
    g.reserve(0x82000000, 0x100000, "early_init_fdt_scan_reserved_mem+0x2c/0x90",
              flags=" nid=-1 flags=0", func="__memblock_reserve")
    ar = "memblock_alloc_range_nid+0xd4/0x150"
    blk = g.alloc("memblock_alloc_try_nid", 0x3000, 0x1000, -1, 0, 0,
                  "early_init_dt_alloc_memory_arch+0x1c/0x40", ar, flags=rk,
                  reserve_func="__memblock_reserve")
    g.alloc("memblock_alloc_try_nid_raw", 0x10000, 0x1000, 1, 0, 0, "sparse_init_nid+0x5a/0x2e0",
            ar, flags=" nid=1 flags=20", reserve_func="__memblock_reserve")
    assert blk is not None
    g.free(blk, 0x1000, "free_fdt+0x10/0x20", func="memblock_phys_free")
    g.alloc("memblock_alloc_try_nid", 0x800, 0x40, -1, 0, 0, "setup_log_buf+0x40/0x1a0", ar,
            flags=rk, reserve_func="__memblock_reserve")
    g.dump()
    g.write("constructed-6.16-dt-dump-start.log", [
        "CONSTRUCTED (not a real machine): kernel 6.16 spellings, written from its debug formats.",
        "A device-tree boot: RAM and the kernel image were set up before memblock=debug took",
        "effect, so the first MEMBLOCK configuration dump holds the start state.",
    ])


def main() -> None:
    for make in (log_3_10, log_3_15, log_4_4, log_4_18, log_5_4, log_6_1, log_6_16):
        make()


if __name__ == "__main__":
    main()
