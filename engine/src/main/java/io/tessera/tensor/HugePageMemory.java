package io.tessera.tensor;

import java.lang.foreign.Arena;
import java.lang.foreign.FunctionDescriptor;
import java.lang.foreign.Linker;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.lang.invoke.MethodHandle;
import java.util.Locale;

/**
 * Large tensors on transparent huge pages (Linux), so that a long stream over them, such as a
 * decode step reading a key/value cache, crosses a 2 MB page where it crossed a 4 KB one.
 *
 * <p>Why: a decode step reads the whole cache once per generated token, and on two cores it is
 * bound by how fast each core can read (about 13 GB/s a core on the Intel Xeon this was measured on,
 * whatever the number of streams or the width of the loads). On 4 KB pages every 4 KB of the stream
 * is a new TLB entry, and the core's read rate paid for the page walks: a float32 decode step
 * (B = 1, 32,768 cached tokens, D = 128, 32 query heads over 8 key/value heads) took 31.3–32.7 ms on
 * one thread and 15.8–16.8 ms on two with the cache in {@code Arena} memory, 28.4–30.9 and 15.4–16.0
 * ms on huge pages (alternating JVMs); a plain read of 256 MiB on one core rose from 12.7–14.0 to
 * 14.8–15.4 GB/s. Workloads that reuse a
 * tensor from the caches (the dense and variant kernels) measured the same either way.
 *
 * <p>How: an anonymous private {@code mmap} of the allocation plus one huge page, trimmed
 * ({@code munmap}) to a huge-page boundary, marked {@code madvise(MADV_HUGEPAGE)} (the kernel's
 * default policy on Debian and most distributions backs only regions that ask), touched once per
 * 4 KB so that the memory is there now as {@link Arena#allocate} would have it, and tied to the
 * arena with {@code munmap} as the cleanup run when the arena closes. The kernel hands anonymous
 * memory out zeroed. Only for the JDK's own arenas ({@code Arena.ofConfined}, {@code ofShared},
 * {@code ofAuto}, {@code global}): an arena a user implemented keeps allocating its own memory.
 * Whether the kernel can find free 2 MB pages decides only speed: where it cannot, the same memory
 * is backed by 4 KB pages.
 *
 * <p>Used from {@value #THRESHOLD_BYTES} bytes on, on Linux, when this module may call native code
 * ({@code --enable-native-access}; without it nothing is called, so the JDK prints no warning) and
 * unless {@code -D}{@value #PROPERTY}{@code =false}.
 */
final class HugePageMemory {
    private HugePageMemory() {}

    /** System property: {@code false} turns huge pages off, {@code true} (the default) allows them. */
    static final String PROPERTY = "tessera.hugePages";

    /** Allocations from this size on go to huge pages (smaller ones would waste most of a 2 MB page or gain nothing). */
    static final long THRESHOLD_BYTES = 8L << 20;

    /** A transparent huge page on x86-64 and the usual aarch64 kernels. */
    static final long HUGE_PAGE = 2L << 20;

    private static final long SMALL_PAGE = 4096;
    private static final int PROT_READ_WRITE = 0x1 | 0x2, MAP_PRIVATE_ANONYMOUS = 0x02 | 0x20, MADV_HUGEPAGE = 14;

    private static final MethodHandle MMAP, MUNMAP, MADVISE;
    private static final String REASON;

    static {
        String setting = System.getProperty(PROPERTY, "true").trim().toLowerCase(Locale.ROOT);
        if (!setting.equals("true") && !setting.equals("false")) {
            throw new IllegalArgumentException(PROPERTY + " must be true or false, got '" + System.getProperty(PROPERTY) + "'");
        }
        MethodHandle mmap = null, munmap = null, madvise = null;
        String reason;
        Module module = HugePageMemory.class.getModule();
        if (setting.equals("false")) {
            reason = "off (-D" + PROPERTY + "=false)";
        } else if (!System.getProperty("os.name", "").toLowerCase(Locale.ROOT).startsWith("linux")) {
            reason = "off (not Linux)";
        } else if (!module.isNativeAccessEnabled()) {
            reason = "off (native access not enabled for " + (module.isNamed() ? module.getName() : "the unnamed module") + ")";
        } else {
            try {
                Linker linker = Linker.nativeLinker();
                var libc = linker.defaultLookup();
                // Pointers taken and returned as 64-bit integers: the platforms the Vector API runs on are 64-bit.
                mmap = linker.downcallHandle(libc.find("mmap").orElseThrow(), FunctionDescriptor.of(ValueLayout.JAVA_LONG,
                        ValueLayout.JAVA_LONG, ValueLayout.JAVA_LONG, ValueLayout.JAVA_INT, ValueLayout.JAVA_INT, ValueLayout.JAVA_INT, ValueLayout.JAVA_LONG));
                munmap = linker.downcallHandle(libc.find("munmap").orElseThrow(), FunctionDescriptor.of(ValueLayout.JAVA_INT, ValueLayout.JAVA_LONG, ValueLayout.JAVA_LONG));
                madvise = linker.downcallHandle(libc.find("madvise").orElseThrow(), FunctionDescriptor.of(ValueLayout.JAVA_INT, ValueLayout.JAVA_LONG, ValueLayout.JAVA_LONG, ValueLayout.JAVA_INT));
                if (ValueLayout.ADDRESS.byteSize() != Long.BYTES) throw new IllegalStateException("not a 64-bit platform");
                reason = "on";
            } catch (Throwable e) {
                mmap = munmap = madvise = null;
                reason = "off (" + e + ")";
            }
        }
        MMAP = mmap;
        MUNMAP = munmap;
        MADVISE = madvise;
        REASON = reason;
    }

    /** "on", or "off (why)". */
    static String describe() {
        return REASON;
    }

    /**
     * {@code bytes} of zeroed memory starting on a huge page, owned by {@code arena} (freed when it
     * closes), or null when this allocation is not for huge pages (too small, an arena the JDK did not
     * make, huge pages off, or the kernel refused the mapping): the caller then allocates from the arena.
     */
    static MemorySegment allocate(Arena arena, long bytes) {
        if (MMAP == null || bytes < THRESHOLD_BYTES || !arena.getClass().getName().startsWith("jdk.internal.foreign.")) return null;
        long length = Math.addExact(bytes, SMALL_PAGE - 1) & -SMALL_PAGE, mapped = Math.addExact(length, HUGE_PAGE);
        long raw;
        try {
            raw = (long) MMAP.invokeExact(0L, mapped, PROT_READ_WRITE, MAP_PRIVATE_ANONYMOUS, -1, 0L);
        } catch (Throwable t) {
            return null;
        }
        if (raw == -1L) return null;   // MAP_FAILED: out of address space or memory; the arena reports it its own way
        long start = (raw + HUGE_PAGE - 1) & -HUGE_PAGE, end = start + length;
        unmap(raw, start - raw);
        unmap(end, raw + mapped - end);
        MemorySegment segment;
        try {
            segment = MemorySegment.ofAddress(start).reinterpret(length, arena, s -> unmap(start, length));
        } catch (RuntimeException e) {   // closed arena, or a confined one from another thread: nothing may stay mapped
            unmap(start, length);
            throw e;
        }
        try {
            int ignored = (int) MADVISE.invokeExact(start, length, MADV_HUGEPAGE);   // refused (THP disabled): 4 KB pages, same memory
        } catch (Throwable t) {
            // the hint is optional
        }
        for (long at = 0; at < length; at += SMALL_PAGE) segment.set(ValueLayout.JAVA_BYTE, at, (byte) 0);   // faulted in now, as Arena.allocate's zeroing does
        return segment.asSlice(0, bytes);
    }

    /**
     * Best effort: munmap of a range this class mapped fails only for arguments the kernel rejects,
     * which these are not; were it to fail, the range would stay mapped (memory, not a wrong result),
     * and an arena's close must not throw for it.
     */
    private static void unmap(long address, long length) {
        if (length == 0) return;
        try {
            int ignored = (int) MUNMAP.invokeExact(address, length);
        } catch (Throwable t) {
            // see above
        }
    }
}
