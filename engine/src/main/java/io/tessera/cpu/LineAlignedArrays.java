package io.tessera.cpu;

import java.lang.foreign.FunctionDescriptor;
import java.lang.foreign.Linker;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.lang.invoke.MethodHandle;
import java.util.Locale;

/**
 * Where a heap float array's cache lines begin, so that the kernels' scratch buffers that
 * full-width vectors load from and store to can be used from their first 64-byte line on.
 *
 * <p>Why: with 512-bit vectors every load of 16 floats at an address that is not a multiple of 64
 * spans two cache lines, and the core pays for both. A Java array's elements start 16 bytes past
 * its object, and objects sit at multiples of 8 bytes wherever the allocator and the garbage
 * collector put them, so a scratch array's vector loads were aligned in about one placement out of
 * eight, and the same kernel ran at a different speed from one JVM to the next. Measured on an
 * Intel Xeon (AVX-512, 48 KB L1; B = 1, H = 8, n = 4096, D = 64), with the hot buffers aligned: the
 * dense forward pass, the engine before this beside it in one JVM, one thread 291.8 → 275.6 ms, two
 * threads 151.8 → 142.6 ms; the training step on two threads (alternating JVMs, same checksum, the
 * pair path's score rows not yet aligned) forward 149–151 → 144–145 ms, backward 372 → 352–355 ms;
 * Linformer (k = 256) 22.5–23.0 → 21.8–22.0 ms.
 *
 * <p>How: the JDK gives no address of a heap object, but a critical downcall
 * ({@link Linker.Option#critical(boolean) critical(true)}) may take a heap segment, and
 * {@code memmove(a, a, 0)} returns its first argument untouched: the array's address at that
 * moment (taken as a 64-bit integer, which a pointer is returned as on the 64-bit platforms the
 * Vector API runs on, so the call allocates no segment for it). A buffer is allocated with
 * {@link #SLACK_FLOATS} floats to spare and used from {@link #floatsToLine} on, asked again each time
 * its contents are written anew (a query block, a GEMM item, a decode call). Moving an array to a
 * line instead (allocating it again when the collector had moved it) kept it young: a young
 * collection moved it again, and it was allocated again after every collection. The collector may
 * still move an array while it is in use; the index stays valid and only the alignment is lost
 * until the next ask: the address never decides a result, only speed.
 *
 * <p>Available on Linux and macOS when this module may call native code
 * ({@code --enable-native-access}; without it nothing is called, so the JDK prints no warning) and
 * unless {@code -D}{@value #PROPERTY}{@code =false}; otherwise {@link #floatsToLine} is 0.
 */
final class LineAlignedArrays {
    private LineAlignedArrays() {}

    /** System property: {@code false} turns the alignment off, {@code true} (the default) allows it. */
    static final String PROPERTY = "tessera.lineAlignedScratch";

    /** Bytes of a cache line (and of a 512-bit vector). */
    static final int LINE = 64;

    /** Floats of slack a buffer needs so that {@link #floatsToLine} of them can be skipped. */
    static final int SLACK_FLOATS = LINE / Float.BYTES;

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
                        FunctionDescriptor.of(ValueLayout.JAVA_LONG, ValueLayout.ADDRESS, ValueLayout.ADDRESS, ValueLayout.JAVA_LONG),
                        Linker.Option.critical(true));
                float[] probe = new float[1];
                MemorySegment s = MemorySegment.ofArray(probe);
                long at = (long) memmove.invokeExact(s, s, 0L);
                if (at == 0 || at % Float.BYTES != 0 || ValueLayout.ADDRESS.byteSize() != Long.BYTES) throw new IllegalStateException("memmove returned " + at + " for a heap array");
                reason = "on";
            } catch (Throwable e) {
                memmove = null;
                reason = "off (" + e + ")";
            }
        }
        MEMMOVE = memmove;
        REASON = reason;
    }

    /** Whether buffers are used from their first line on. */
    static boolean available() {
        return MEMMOVE != null;
    }

    /** "on", or "off (why)". */
    static String describe() {
        return REASON;
    }

    /**
     * Bytes between the first element of the float array that {@code array} views
     * ({@code MemorySegment.ofArray}) and the start of the cache line it lies in, now; −1 when
     * unknown. Callers keep the segment with its array: making one per query allocates it (C2 does
     * not remove it), a few dozen bytes per query block.
     */
    static int lineOffset(MemorySegment array) {
        if (MEMMOVE == null) return -1;
        try {
            return (int) ((long) MEMMOVE.invokeExact(array, array, 0L) & (LINE - 1));
        } catch (Throwable t) {
            return -1;
        }
    }

    /**
     * How many of the array's first floats to skip so that the rest starts on a cache line, now
     * (0 to {@link #SLACK_FLOATS} − 1; 0 when unknown or already on one); {@code array} as in
     * {@link #lineOffset}.
     */
    static int floatsToLine(MemorySegment array) {
        int offset = lineOffset(array);
        return offset <= 0 || offset % Float.BYTES != 0 ? 0 : (LINE - offset) / Float.BYTES;
    }
}
