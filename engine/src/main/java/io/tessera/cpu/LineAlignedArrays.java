package io.tessera.cpu;

import java.lang.foreign.FunctionDescriptor;
import java.lang.foreign.Linker;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.lang.invoke.MethodHandle;
import java.util.Locale;

/**
 * Heap float arrays whose first element sits on a 64-byte cache-line boundary, for the kernels'
 * scratch buffers that full-width vectors load from and store to.
 *
 * <p>Why: with 512-bit vectors every load of 16 floats at an address that is not a multiple of 64
 * spans two cache lines, and the core pays for both. A Java array's elements start 16 bytes past
 * its object, and objects are placed at multiples of 8 bytes wherever the allocator and the garbage
 * collector put them, so a scratch array allocated once per thread had its vector loads aligned in
 * about one placement out of eight, and the same kernel ran at a different speed from one JVM to
 * the next. Measured on an Intel Xeon (AVX-512, 48 KB L1; B = 1, H = 8, n = 4096, D = 64): dense
 * forward, the engine before this beside it in one JVM, one thread 279–291 → 272–277 ms, two threads
 * 147.0–150.7 → 141.8–142.4 ms; training step on two threads (alternating JVMs, same checksum),
 * forward 149–151 → 139–140 ms, backward 377–379 → 350 ms; Linformer (k = 256) 23.0 → 21.2–21.7
 * ms; a 32k-token decode step 15.6–15.8 → 14.5–15.2 ms.
 *
 * <p>How: the JDK gives no address of a heap object, but a critical downcall
 * ({@link Linker.Option#critical(boolean) critical(true)}) may take a heap segment, and
 * {@code memmove(a, a, 0)} returns its first argument untouched: the array's address at that
 * moment. A new array is placed on a line by a filler array allocated just before it, sized from
 * where the previous try landed (a few tries, then it settles for what it got). The
 * collector may move an array later; {@link #misaligned} tells a kernel to allocate it again. The
 * address only ever decides speed, never a result: the kernels compute the same floats at any
 * placement.
 *
 * <p>Available on Linux and macOS when this module may call native code
 * ({@code --enable-native-access}; without it nothing is called, so the JDK prints no warning) and
 * unless {@code -D}{@value #PROPERTY}{@code =false}; otherwise arrays are plain {@code new float[]}.
 */
final class LineAlignedArrays {
    private LineAlignedArrays() {}

    /** System property: {@code false} turns the placement off, {@code true} (the default) allows it. */
    static final String PROPERTY = "tessera.lineAlignedScratch";

    /** Bytes of a cache line (and of a 512-bit vector). */
    static final int LINE = 64;

    /** Allocations tried per array before taking an unaligned one. */
    private static final int TRIES = 16;

    /** Bytes of an empty byte[] (header and length) with the JVM's usual object layout: a filler's smallest size. */
    private static final int FILLER_HEADER = 16;

    /**
     * Larger arrays are left where they land: a large array may be allocated outside the thread's
     * buffer (G1 puts one of half a region or more at a region's start, 16 bytes off a line, every
     * time), so tries would only make garbage.
     */
    static final int MAX_FLOATS = 1 << 16;

    /** Set after {@link #GIVE_UP} placements in a row found no line: the allocator does not cooperate (then nothing is re-placed). */
    private static volatile boolean failing;
    private static final int GIVE_UP = 8;
    private static int failures;

    private static final MethodHandle MEMMOVE;
    private static final String REASON;

    static {
        String setting = System.getProperty(PROPERTY, "true").trim().toLowerCase(Locale.ROOT);
        if (!setting.equals("true") && !setting.equals("false")) {
            throw new IllegalArgumentException(PROPERTY + " must be true or false, got '" + System.getProperty(PROPERTY) + "'");
        }
        MethodHandle memmove = null;
        String reason;
        if (setting.equals("false")) {
            reason = "off (-D" + PROPERTY + "=false)";
        } else if (!LineAlignedArrays.class.getModule().isNativeAccessEnabled()) {
            Module m = LineAlignedArrays.class.getModule();
            reason = "off (native access not enabled for " + (m.isNamed() ? m.getName() : "the unnamed module") + ")";
        } else {
            try {
                Linker linker = Linker.nativeLinker();
                memmove = linker.downcallHandle(linker.defaultLookup().find("memmove").orElseThrow(),
                        FunctionDescriptor.of(ValueLayout.ADDRESS, ValueLayout.ADDRESS, ValueLayout.ADDRESS, ValueLayout.JAVA_LONG),
                        Linker.Option.critical(true));
                float[] probe = new float[1];
                MemorySegment s = MemorySegment.ofArray(probe);
                long at = ((MemorySegment) memmove.invokeExact(s, s, 0L)).address();
                if (at == 0 || at % Float.BYTES != 0) throw new IllegalStateException("memmove returned " + at + " for a heap array");
                reason = "on";
            } catch (Throwable e) {
                memmove = null;
                reason = "off (" + e + ")";
            }
        }
        MEMMOVE = memmove;
        REASON = reason;
    }

    /** Whether arrays are placed on lines. */
    static boolean available() {
        return MEMMOVE != null;
    }

    /** "on", or "off (why)". */
    static String describe() {
        return REASON;
    }

    /** Where {@code a}'s first element is now; −1 when unknown. */
    private static long address(float[] a) {
        if (MEMMOVE == null) return -1;
        try {
            MemorySegment s = MemorySegment.ofArray(a);
            return ((MemorySegment) MEMMOVE.invokeExact(s, s, 0L)).address();
        } catch (Throwable t) {
            return -1;
        }
    }

    /** Bytes between {@code a}'s first element and the cache line it starts in, now; −1 when unknown. */
    static int lineOffset(float[] a) {
        long at = address(a);
        return at < 0 ? -1 : (int) (at & (LINE - 1));
    }

    /** Floats of slack an array needs so that {@link #floatsToLine} of them can be skipped. */
    static final int SLACK_FLOATS = LINE / Float.BYTES;

    /**
     * How many of {@code a}'s first floats to skip so that the rest starts on a line, now: for
     * arrays too large to be placed (see {@link #MAX_FLOATS}), allocated with {@link #SLACK_FLOATS}
     * floats to spare. 0 when unknown. If the collector moves {@code a} later, the index stays valid
     * and only the alignment is lost.
     */
    static int floatsToLine(float[] a) {
        int offset = lineOffset(a);
        return offset <= 0 || offset % Float.BYTES != 0 ? 0 : (LINE - offset) / Float.BYTES;
    }

    /**
     * Whether {@code a} should be allocated again: placement is on and working, {@code a} is small
     * enough to be placed, and its first element is off a line by a multiple of 8 bytes (with
     * other object layouts, compact headers say, no filler can put it on one).
     */
    static boolean misaligned(float[] a) {
        if (failing || a.length == 0 || a.length > MAX_FLOATS) return false;
        int offset = lineOffset(a);
        return offset > 0 && offset % 8 == 0;
    }

    /** Keeps the fillers reachable until the array after them is allocated. */
    private static Object filler;

    /** A zeroed {@code new float[length]}, its first element on a cache line when placement is on and the allocator allows. */
    static float[] floats(int length) {
        float[] a = new float[length];
        int offset = lineOffset(a);
        if (!misaligned(a)) return a;
        // A thread allocates by bumping a pointer through its own buffer, so a filler array of f
        // bytes allocated before the next array moves that array's elements by f: from one try
        // to the next, offset' = offset + f + c (mod 64), where c (the array's size, and whatever
        // the address query itself allocates) stays the same. The first try measures c, the next
        // ones correct for it. (Another buffer, or an allocation outside it, can come between:
        // then the following try measures again.)
        long fill = FILLER_HEADER, c = -1;
        for (int tries = 1; tries < TRIES && misaligned(a); tries++) {
            if (c >= 0) {
                fill = Math.floorMod(-(offset + c), (long) LINE);
                if (fill < FILLER_HEADER) fill += LINE;
            }
            filler = new byte[(int) (fill - FILLER_HEADER)];
            a = new float[length];
            int next = lineOffset(a);
            c = Math.floorMod(next - offset - fill, (long) LINE);
            offset = next;
        }
        filler = null;
        synchronized (LineAlignedArrays.class) {
            failures = misaligned(a) ? failures + 1 : 0;
            if (failures >= GIVE_UP) failing = true;
        }
        return a;
    }
}
