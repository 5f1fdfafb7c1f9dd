package io.tessera.variant.internal;

import jdk.incubator.vector.FloatVector;
import jdk.incubator.vector.VectorShape;
import jdk.incubator.vector.VectorSpecies;

/**
 * The float lanes of the variants' Vector API code: the CPU kernels' width (the JVM's preferred
 * species, or {@code -Dtessera.vectorBitSize}), read the same way, since the variant packages do not
 * see the internal {@code io.tessera.cpu} configuration. Loaded only by classes that are themselves
 * loaded only when the incubator module is present.
 *
 * <p>One float shape in the whole engine is a rule, not a style: C2 inlines the Vector API's static
 * factories ({@code FloatVector.fromArray}, {@code broadcast}, …) through a virtual call whose
 * receiver profile is shared by every caller in the JVM. Once two float shapes have passed through
 * it, a kernel compiled afterwards gets a merge of both shapes where it needed one, cannot keep its
 * vectors in registers, and allocates a box per vector operation (measured: a half-width float
 * species here made every decode step at the 128-bit width allocate 0.4–28 MB).
 */
public final class VariantSpecies {
    private VariantSpecies() {}

    /** The float species of every variant kernel. */
    public static final VectorSpecies<Float> FLOATS = floats();

    private static VectorSpecies<Float> floats() {
        String forced = System.getProperty("tessera.vectorBitSize");
        if (forced != null && !forced.isBlank()) {
            try {
                int bits = Integer.parseInt(forced.trim());
                if (bits == FloatVector.SPECIES_PREFERRED.vectorBitSize()) return FloatVector.SPECIES_PREFERRED;
                if (bits == 128 || bits == 256 || bits == 512) return VectorSpecies.of(float.class, VectorShape.forBitSize(bits));
            } catch (NumberFormatException ignored) {
                // the CPU backend rejects the bad value by name; the element-wise kernels need no width of their own
            }
        }
        return FloatVector.SPECIES_PREFERRED;
    }
}
