/**
 * Tessera: tensors over memory segments, a sparse-pattern compiler and attention kernels.
 */
module io.tessera.engine {
    // Optional at run time: without it Backend.best() falls back to the scalar backend.
    requires static jdk.incubator.vector;

    exports io.tessera.tensor;
    exports io.tessera.pattern;
    exports io.tessera.attention;
    exports io.tessera.reference;
    exports io.tessera.variant;

    uses io.tessera.variant.VariantProvider;
}
