package io.tessera.cpu;

import java.lang.foreign.Arena;
import java.lang.foreign.FunctionDescriptor;
import java.lang.foreign.Linker;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.SymbolLookup;
import java.lang.foreign.ValueLayout;
import java.lang.invoke.MethodHandle;
import java.util.Locale;

/**
 * Linux thread affinity through libc ({@code sched_getcpu}, {@code gettid},
 * {@code sched_getaffinity}, {@code sched_setaffinity}) by the FFM API: no native library is
 * shipped. {@link WorkerPool} uses it to steer a parked worker off its caller's CPU when it wakes
 * the worker (see there why). Available only on Linux, when this module may call native code
 * ({@code --enable-native-access}; without it nothing is called, so the JDK prints no warning),
 * and unless {@code -D}{@value #PROPERTY}{@code =false}.
 */
final class CpuAffinity {
    private CpuAffinity() {}

    /** System property: {@code false} turns worker steering off, {@code true} (the default) allows it. */
    static final String PROPERTY = "tessera.workerAffinity";

    /** Bytes of a CPU mask: glibc's {@code cpu_set_t} holds 1024 CPUs; the kernel takes longer masks too. */
    static final int MASK_BYTES = 1024 / 8;

    private static final MethodHandle SCHED_GETCPU, GETTID, GET_AFFINITY, SET_AFFINITY;

    /** Why steering is on or off, for {@link #describe()}. */
    private static final String REASON;

    static {
        String setting = System.getProperty(PROPERTY, "true").trim().toLowerCase(Locale.ROOT);
        if (!setting.equals("true") && !setting.equals("false")) {
            throw new IllegalArgumentException(PROPERTY + " must be true or false, got '" + System.getProperty(PROPERTY) + "'");
        }
        MethodHandle getCpu = null, getTid = null, getAffinity = null, setAffinity = null;
        String reason;
        if (setting.equals("false")) {
            reason = "off (-D" + PROPERTY + "=false)";
        } else if (!System.getProperty("os.name", "").toLowerCase(Locale.ROOT).startsWith("linux")) {
            reason = "off (not Linux)";
        } else if (!CpuAffinity.class.getModule().isNativeAccessEnabled()) {
            reason = "off (native access not enabled for " + describeModule() + ")";
        } else {
            try {
                Linker linker = Linker.nativeLinker();
                SymbolLookup libc = linker.defaultLookup();
                FunctionDescriptor intOfNothing = FunctionDescriptor.of(ValueLayout.JAVA_INT);
                FunctionDescriptor mask = FunctionDescriptor.of(ValueLayout.JAVA_INT, ValueLayout.JAVA_INT, ValueLayout.JAVA_LONG, ValueLayout.ADDRESS);
                getCpu = linker.downcallHandle(libc.find("sched_getcpu").orElseThrow(), intOfNothing, Linker.Option.critical(false));
                getTid = linker.downcallHandle(libc.find("gettid").orElseThrow(), intOfNothing);
                getAffinity = linker.downcallHandle(libc.find("sched_getaffinity").orElseThrow(), mask);
                setAffinity = linker.downcallHandle(libc.find("sched_setaffinity").orElseThrow(), mask);
                reason = "on";
            } catch (RuntimeException | LinkageError e) {
                getCpu = getTid = getAffinity = setAffinity = null;
                reason = "off (" + e + ")";
            }
        }
        SCHED_GETCPU = getCpu;
        GETTID = getTid;
        GET_AFFINITY = getAffinity;
        SET_AFFINITY = setAffinity;
        REASON = reason;
    }

    private static String describeModule() {
        Module m = CpuAffinity.class.getModule();
        return m.isNamed() ? m.getName() : "the unnamed module";
    }

    /** Whether the libc calls are available and allowed. */
    static boolean available() {
        return SET_AFFINITY != null;
    }

    /** "on", or "off (why)". */
    static String describe() {
        return REASON;
    }

    /** The CPU the calling thread runs on now, or −1 when unknown. */
    static int currentCpu() {
        if (SCHED_GETCPU == null) return -1;
        try {
            return (int) SCHED_GETCPU.invokeExact();
        } catch (Throwable t) {
            return -1;
        }
    }

    /** The calling thread's kernel thread id, or −1 when unavailable. */
    static int currentThreadId() {
        if (GETTID == null) return -1;
        try {
            return (int) GETTID.invokeExact();
        } catch (Throwable t) {
            return -1;
        }
    }

    /** A zeroed mask in {@code arena}. */
    static MemorySegment newMask(Arena arena) {
        return arena.allocate(MASK_BYTES, 8);
    }

    /** Reads thread {@code tid}'s allowed CPUs into {@code mask} (0 = the calling thread); false if the call failed. */
    static boolean get(int tid, MemorySegment mask) {
        return call(GET_AFFINITY, tid, mask);
    }

    /** Sets thread {@code tid}'s allowed CPUs to {@code mask} (0 = the calling thread); false if the call failed. */
    static boolean set(int tid, MemorySegment mask) {
        return call(SET_AFFINITY, tid, mask);
    }

    private static boolean call(MethodHandle affinity, int tid, MemorySegment mask) {
        if (affinity == null) return false;
        try {
            return (int) affinity.invokeExact(tid, (long) MASK_BYTES, mask) == 0;
        } catch (Throwable t) {
            return false;
        }
    }

    /** Whether {@code cpu} is in {@code mask}. */
    static boolean contains(MemorySegment mask, int cpu) {
        return cpu >= 0 && cpu < MASK_BYTES * 8 && (mask.get(ValueLayout.JAVA_LONG, (cpu >>> 6) * 8L) & (1L << (cpu & 63))) != 0;
    }

    /** How many CPUs {@code mask} holds. */
    static int count(MemorySegment mask) {
        int n = 0;
        for (long i = 0; i < MASK_BYTES; i += 8) n += Long.bitCount(mask.get(ValueLayout.JAVA_LONG, i));
        return n;
    }

    /** {@code to} = {@code from} without {@code cpu}. */
    static void copyWithout(MemorySegment from, int cpu, MemorySegment to) {
        MemorySegment.copy(from, 0, to, 0, MASK_BYTES);
        long word = (cpu >>> 6) * 8L;
        to.set(ValueLayout.JAVA_LONG, word, to.get(ValueLayout.JAVA_LONG, word) & ~(1L << (cpu & 63)));
    }
}
