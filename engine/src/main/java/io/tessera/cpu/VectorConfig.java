package io.tessera.cpu;

import java.lang.System.Logger.Level;
import jdk.incubator.vector.FloatVector;
import jdk.incubator.vector.IntVector;
import jdk.incubator.vector.VectorShape;
import jdk.incubator.vector.VectorSpecies;

/**
 * The one place that picks the vector species every SIMD kernel uses (as Lucene's
 * {@code VectorizationProvider} does): once per JVM, from {@code -Dtessera.vectorBitSize=128|256|512}
 * when set, else the widest species the JVM offers. Forcing a narrower width runs the code paths
 * of narrower machines (16-register micro-kernels, the 4-column PV block) on a wide one, which is
 * how the property suite checks every width on one machine. A width wider than the hardware's
 * runs correctly but slowly (the Vector API falls back to Java code), so the choice is logged.
 *
 * <p>One place is also a correctness matter for speed: C2 inlines the Vector API's static factories
 * ({@code FloatVector.fromArray}, {@code fromMemorySegment}, …) through a virtual call whose receiver
 * profile every caller in the JVM shares. After a second float shape has passed through it (a
 * half-width vector, say), a kernel compiled later merges two shapes where it needed one and boxes
 * every vector: at 128 bits the decode kernel then allocated 0.4–28 MB per step. So the engine has one
 * float shape ({@link #FLOATS}; the variants read the same width in their own
 * {@code VariantSpecies}), and {@code ArchitectureTest} keeps it that way. Code outside Tessera in
 * the same JVM that uses other float shapes can still do this.
 */
final class VectorConfig {
    private VectorConfig() {}

    /** System property that forces a vector width in bits. */
    static final String BIT_SIZE_PROPERTY = "tessera.vectorBitSize";

    /** Float lanes of every SIMD kernel. */
    static final VectorSpecies<Float> FLOATS;
    /** Integer lanes matching {@link #FLOATS} one to one (lane masks, exponent arithmetic). */
    static final VectorSpecies<Integer> INTS;
    /** Why this width: printed by the backend's description. */
    static final String REASON;
    /**
     * 32 vector registers to allocate from: assumed for 512-bit species (AVX-512, whose 32 registers
     * come with it). 128- and 256-bit species are written for 16 registers (SSE/AVX2/NEON-sized
     * register files spill with the wider register blocks).
     */
    static final boolean WIDE_REGISTER_FILE;

    static {
        String forced = System.getProperty(BIT_SIZE_PROPERTY);
        VectorSpecies<Float> preferred = FloatVector.SPECIES_PREFERRED;
        if (forced == null || forced.isBlank()) {
            FLOATS = preferred;
            REASON = "the JVM's preferred species";
        } else {
            int bits;
            try {
                bits = Integer.parseInt(forced.trim());
            } catch (NumberFormatException e) {
                throw new IllegalArgumentException(BIT_SIZE_PROPERTY + " must be 128, 256 or 512, got '" + forced + "'");
            }
            if (bits != 128 && bits != 256 && bits != 512) {
                throw new IllegalArgumentException(BIT_SIZE_PROPERTY + " must be 128, 256 or 512, got " + bits);
            }
            FLOATS = FloatVector.SPECIES_PREFERRED.vectorBitSize() == bits ? preferred
                    : VectorSpecies.of(float.class, VectorShape.forBitSize(bits));
            REASON = "-D" + BIT_SIZE_PROPERTY + "=" + bits + (bits > preferred.vectorBitSize()
                    ? " (wider than this CPU's " + preferred.vectorBitSize() + "-bit vectors: emulated, slow)" : "");
        }
        INTS = VectorSpecies.of(int.class, FLOATS.vectorShape());
        WIDE_REGISTER_FILE = FLOATS.vectorBitSize() >= 512;
        // Lane masks are kept in one long per key over a lane group of 2 vectors (see SimdAttentionKernel).
        if (2 * FLOATS.length() > 64) {
            throw new IllegalStateException(FLOATS + " has " + FLOATS.length() + " lanes; the kernels' lane masks hold 64 (2 vectors of at most 32)");
        }
        // Without C2 every vector operation is an allocation: correct, but ~100x slower.
        String vmInfo = System.getProperty("java.vm.info", "");
        if (vmInfo.contains("interpreted")) {
            System.getLogger("io.tessera.cpu").log(Level.WARNING,
                    "the JVM runs interpreted (" + vmInfo + "): Vector API kernels will be very slow; the scalar backend is faster");
        }
    }

    /** "256-bit species (the JVM's preferred species)". */
    static String describe() {
        return FLOATS.vectorBitSize() + "-bit species (" + REASON + ")";
    }

    /** Integer vector of lane indices' bits: lane i holds {@code 1 << i}. */
    static IntVector laneBits() {
        return IntVector.broadcast(INTS, 1).lanewise(jdk.incubator.vector.VectorOperators.LSHL, IntVector.zero(INTS).addIndex(1));
    }
}
